variable "key" {
  sensitive = true
}

run "team" {}

agent "eng" {
  command = ["claude"]
  egress {
    allow = ["api.anthropic.com", "api.github.com", "*.example.com"]
  }
  secret "ANTHROPIC_API_KEY" {
    value = var.key
    inject {
      host   = "api.anthropic.com"
      header = "x-api-key"
    }
  }
  secret "GH_TOKEN" {
    from_command = ["gh", "auth", "token"]
    timeout      = "10s"
    refresh      = "55m"
    inject {
      host   = ["api.github.com", "*.example.com"]
      header = "authorization"
      scheme = "Bearer"
    }
  }
  secret "DEPLOY_KEY" {
    from_file = "./keys/deploy"
    file      = "/run/secrets/deploy"
  }
  secret "OTHER" {
    from_env = "HOME_TOKEN"
    file     = "/run/secrets/other.txt"
  }
}
