run "blocks" {
  limits {}
}

agnet "a" {
  command = ["true"]
}

agent "b" {
  command = ["true"]

  volume {
    source = "./work"
  }

  mount "named" {
    source = "./work"
    target = "/workspace"
  }
}

locals {
  x = 1
}
