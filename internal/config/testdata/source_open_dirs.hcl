# ./open is mode 0777 (as a directory agents write is); ./ours is 0775 and
# belongs to the test's own group.
run "open" {}

agent "a" {
  command = ["true"]

  # The open directory itself: fine, it is what is mounted.
  mount {
    source    = "./open"
    target    = "/open"
    read_only = false
  }
  # Something inside it: whoever writes ./open could swap "sub" for a link.
  mount {
    source = "./open/sub"
    target = "/sub"
  }
  # A group-writable directory of ours on the way.
  mount {
    source = "./ours/sub"
    target = "/ours"
  }
}
