run "sources" {}

agent "a" {
  command = ["true"]

  mount {
    source = "./no-such-dir"
    target = "/m/missing"
  }
  mount {
    source = "./dangling"
    target = "/m/dangling"
  }
  mount {
    source = "./prompt.txt/x"
    target = "/m/not-a-dir"
  }
  mount {
    source = "./loop-a"
    target = "/m/loop"
  }
}
