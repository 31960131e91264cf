run "argv" {}

agent "empty" {
  command = []
}

agent "blank" {
  command = ["", "-c"]
}

agent "string" {
  command = "sh -c 'echo hi'"
}

agent "holes" {
  command = ["sh", null]
}

agent "nul" {
  command = ["sh", "a\u0000b"]
}

agent "nothing" {
  command = null
}

agent "missing" {
  image = "localhost/runner-agent:latest"
}

agent "env" {
  command = ["true"]
  env = {
    GOOD       = "yes"
    "bad-key"  = "x"
    "1ST"      = "x"
    RUNNER_ID  = "spoof"
    EMPTY      = null
    NUL        = "a\u0000b"
    NUMBER     = 42
  }
}

agent "env-list" {
  command = ["true"]
  env     = ["A=1"]
}

agent "image" {
  command = ["true"]
  image   = "Bad Image!"
}

agent "workdir" {
  command = ["true"]
  workdir = "relative/dir"
}

agent "workdir-dots" {
  command = ["true"]
  workdir = "/a/../b"
}

agent "types" {
  command = ["true"]
  cpus    = "fast"
  memory  = ["1GiB"]
}

agent "nested" {
  command = ["sh", ["x"]]
  env     = { A = { B = "c" } }
}
