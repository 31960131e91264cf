run "engines" {
  engine            = "podman"
  require_rootless  = "maybe"
  accept_unenforced = ["memory", "disk"]
}

agent "a" {
  command = ["true"]
  network = "host"
}
