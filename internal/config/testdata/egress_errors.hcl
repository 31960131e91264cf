run "team" {}

agent "forms" {
  command = ["claude"]
  egress {
    allow = [
      "",
      "*",
      "*.*.example.com",
      "a.*.example.com",
      "foo*.example.com",
      "example.com:0",
      "example.com:65536",
      "example.com:https",
      "10.1.2.0/33",
      "10.1.2.3/24:5432",
      "10.1.2/24",
      " example.com",
      "exa mple.com",
      "https://example.com",
      "example.com/path",
      "bücher.de",
      "[::1",
      "fd00::/8:5432",
      "127.1",
      "ok.example.com",
    ]
    deny = ["*", "x.org:99999"]
  }
}

agent "empty" {
  command = ["claude"]
  egress {
    allow = []
  }
}

agent "bridge" {
  command = ["claude"]
  network = "bridge"
  egress {
    allow = ["api.anthropic.com"]
  }
}

agent "twice" {
  command = ["claude"]
  egress {
    allow = ["a.example.com"]
  }
  egress {
    allow = ["b.example.com"]
  }
}

agent "deny-only" {
  command = ["claude"]
  egress {
    deny = ["a.example.com"]
  }
}

agent "types" {
  command = ["claude"]
  egress {
    allow = "api.anthropic.com"
    deny  = [null]
    other = 1
  }
}
