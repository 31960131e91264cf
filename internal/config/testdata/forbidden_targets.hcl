run "targets" {}

agent "a" {
  command = ["true"]

  mount {
    source = "./work"
    target = "/"
  }
  mount {
    source = "./work"
    target = "workspace"
  }
  mount {
    source = "./work"
    target = "/workspace/../etc"
  }
  mount {
    source = "./work"
    target = "/proc/self"
  }
  mount {
    source = "./work"
    target = "/usr/local/bin"
  }
  mount {
    source = "./work"
    target = "/lib64"
  }
  mount {
    source = "./work"
    target = "/sbin"
  }
  mount {
    source = "./work"
    target = "/tmp"
  }
  mount {
    source = "./work"
    target = "/home/agent"
  }
  mount {
    source = "./work"
    target = "/run/runner/sock"
  }
  mount {
    source = "./work"
    target = "/run/runner-egress"
  }
  mount {
    source = "./work"
    target = "/run"
  }
  mount {
    source = "./work"
    target = "/data"
  }
  mount {
    source = "./work"
    target = "/data"
  }
  mount {
    source = "./work"
    target = "/tmp/ok"
  }
  mount {
    source = "./work"
    target = "/home/agent/ok"
  }
}
