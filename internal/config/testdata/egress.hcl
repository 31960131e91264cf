run "team" {
  egress_default = ["api.anthropic.com"]
}

agent "eng" {
  command = ["claude"]
  egress {
    allow = ["api.anthropic.com", "github.com", "*.githubusercontent.com", "registry.npmjs.org:443"]
    deny  = ["gist.githubusercontent.com"] # deny wins over allow
  }
}

# No egress block: the run's egress_default.
agent "reviewer" {
  command = ["claude"]
}

# allow = [] opts out of egress_default: no egress at all.
agent "offline" {
  command = ["sh"]
  egress {
    allow = []
  }
}

# Bridge reaches the network directly; egress_default does not apply.
agent "web" {
  command = ["sh"]
  network = "bridge"
}

agent "db" {
  count   = 2
  command = ["psql"]
  egress {
    allow = ["10.1.2.0/24:5432", "[fd00::/8]:5432", "127.0.0.2:${8080 + count.index}", "API.Example.COM.", "[2001:db8::7]"]
  }
}
