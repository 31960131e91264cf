run "sockets" {}

agent "a" {
  command = ["true"]

  mount {
    source = "./engine.sock"
    target = "/var/run/docker.sock"
  }
  mount {
    source = "sock-link"
    target = "/m/link"
  }
  mount {
    source = "link-to-link"
    target = "/m/link2"
  }
  mount {
    source = "fifo"
    target = "/m/fifo"
  }
}
