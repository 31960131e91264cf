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

agent "d" {
  command = ["true"]
  runtime = "runsc"
  network = "bridge"
}
