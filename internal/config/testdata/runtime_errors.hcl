run "sandboxed" {
  runtime = "kata"
}

agent "a" {
  command = ["true"]
  runtime = 3
}

agent "b" {
  command = ["true"]
  runtime = "gvisor"
}

agent "c" {
  command = ["true"]
  runtime = "runsc"
  pids    = 256
}
