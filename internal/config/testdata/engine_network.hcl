run "engines" {
  engine            = "lxc"
  require_rootless  = "maybe"
  accept_unenforced = ["memory", "disk"]
}

agent "a" {
  command = ["true"]
  network = "host"
}
