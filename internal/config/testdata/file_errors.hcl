run "files" {}

agent "missing" {
  command = ["cat"]
  env     = { PROMPT = file("missing.txt") }
}

agent "big" {
  command = ["cat"]
  env     = { PROMPT = file("big.txt") }
}

agent "dir" {
  command = ["cat"]
  env     = { PROMPT = file("work") }
}

agent "fifo" {
  command = ["cat"]
  env     = { PROMPT = file("fifo") }
}

agent "latin" {
  command = ["cat"]
  env     = { PROMPT = file("latin1.txt") }
}
