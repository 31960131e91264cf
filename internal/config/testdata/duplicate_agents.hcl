run "dups" {}

agent "a" {
  command = ["true"]
}

agent "a" {
  command = ["true"]
}

agent "eng" {
  count   = 3
  command = ["true"]
}

agent "eng-2" {
  command = ["true"]
}

agent "eng" {
  count   = 4
  command = ["true"]
}
