run "mounts" {}

agent "a" {
  command = ["true"]

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
    source          = "./work"
    target          = "/m/sensitive"
    allow_sensitive = "yes"
  }
  mount {
    target = "/m/no-source"
  }
  mount {
    source = null
    target = "/m/null"
  }
}
