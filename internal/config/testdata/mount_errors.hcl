run "mounts" {}

agent "a" {
  command = ["true"]

  mount {
    source = "./no-such-dir"
    target = "/workspace"
  }
  mount {
    source = ""
    target = "/m/empty"
  }
  mount {
    source    = "./work"
    target    = "/m/ro"
    read_only = "yes"
  }
  mount {
    target = "/m/no-source"
  }
  mount {
    source = null
    target = "/m/null"
  }
}
