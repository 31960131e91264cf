# Agent a writes ./ws, where it replaced "shared" with a link to a host
# directory (../hostdir); agent c writes ./proj/inner.
run "redirect" {}

agent "a" {
  command = ["true"]

  mount {
    source    = "./ws"
    target    = "/ws"
    read_only = false
  }
  # Its own second mount through the link it planted.
  mount {
    source = "./ws/shared"
    target = "/shared"
  }
  # Its own real subdirectory: allowed, nothing else writes there.
  mount {
    source = "./ws/sub"
    target = "/sub"
  }
}

agent "b" {
  command = ["true"]

  # The reviewer's redirect.
  mount {
    source = "./ws/shared"
    target = "/shared"
  }
  # No link, but inside a's writable mount.
  mount {
    source = "ws/sub"
    target = "/sub"
  }
  # ".." is lexical: this is ./ws (shared with a, allowed), never the
  # parent of wherever the link leads.
  mount {
    source = "./ws/shared/.."
    target = "/dots"
  }
  # and this is ./ws/shared again.
  mount {
    source = "./ws/sub/../shared"
    target = "/dots2"
  }
  # Contains c's writable mount.
  mount {
    source = "./proj"
    target = "/proj"
  }
  # The same directory as a's writable mount: sharing, allowed.
  mount {
    source = "./ws"
    target = "/ws"
  }
}

agent "c" {
  command = ["true"]

  mount {
    source    = "./proj/inner"
    target    = "/inner"
    read_only = false
  }
}
