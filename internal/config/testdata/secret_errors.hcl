variable "key" {
  sensitive = true
}

variable "plain" {}

run "team" {}

agent "eng" {
  command = ["claude"]
  # A sensitive value anywhere but a secret is refused, and not printed.
  env   = { LEAK = var.key }
  image = var.key
  egress {
    allow = ["api.anthropic.com"]
    deny  = ["evil.anthropic.com"]
  }
  secret "TWO" {
    from_env  = "A"
    from_file = "./a"
    file      = "/run/secrets/two"
  }
  secret "NONE" {
    file = "/run/secrets/none"
  }
  secret "NOWHERE" {
    from_env = "A"
  }
  secret "BOTH" {
    from_env = "A"
    file     = "/run/secrets/both"
    inject {
      host   = "api.anthropic.com"
      header = "x-api-key"
    }
  }
  secret "HOSTS" {
    from_env = "A"
    inject {
      host   = ["api.openai.com", "evil.anthropic.com", "10.0.0.1", "*.bad*"]
      header = "x-api-key"
    }
  }
  secret "HEADER" {
    from_env = "A"
    inject {
      host   = "api.anthropic.com"
      header = "Authorization"
    }
  }
  secret "HEADER2" {
    from_env = "A"
    inject {
      host   = "api.anthropic.com"
      header = "Host"
    }
  }
  secret "HEADER3" {
    from_env = "A"
    inject {
      host   = "api.anthropic.com"
      header = "x-api-key"
      scheme = "Bearer"
    }
  }
  secret "HEADER4" {
    from_env = "A"
    inject {
      host   = "api.anthropic.com"
      header = "Authorization"
      scheme = "Basic"
    }
  }
  secret "PLAIN" {
    value = var.plain
    file  = "/run/secrets/plain"
  }
  secret "LITERAL" {
    value = "sk-in-the-file"
    file  = "/run/secrets/literal"
  }
  secret "PATH" {
    from_env = "A"
    file     = "/etc/passwd"
  }
  secret "REFRESH" {
    from_env = "A"
    refresh  = "55m"
    file     = "/run/secrets/refresh"
  }
  secret "EMPTYCMD" {
    from_command = []
    timeout      = "1h"
    file         = "/run/secrets/cmd"
  }
  secret "bad-name" {
    from_env = "1X"
    file     = "/run/secrets/badname"
  }
  secret "HTTPS_PROXY" {
    from_env = "A"
    file     = "/run/secrets/proxy"
  }
}

agent "offline" {
  command = ["sh"]
  secret "K" {
    from_env = "A"
    inject {
      host   = "api.anthropic.com"
      header = "x-api-key"
    }
  }
}
