run "team" {
  engine = "containerd"
}

agent "eng" {
  count   = 3
  command = ["sh", "-c", format("echo engineer %d of %d", count.index + 1, 3)]
  user    = "${1000 + count.index}:1000"
  env = {
    INDEX = count.index
    ROLE  = count.index == 0 ? "lead" : "dev"
  }
  pids = 16 * (count.index + 1)
}

agent "pm" {
  count   = 1
  command = ["true"]
}

agent "reviewer" {
  command = ["true"]
}
