run "sandboxed" {
  runtime = "runsc"
}

agent "inherits" {
  command = ["true"]
}

agent "host-kernel" {
  command = ["true"]
  runtime = "runc"
}

agent "many" {
  command = ["true"]
  pids    = 1024
}
