run "operator" {}

agent "operator" {
  command = ["true"]
}

agent "runner" {
  command = ["true"]
}

# Counted names are operator-1 and operator-2, which are not reserved.
agent "operator" {
  count   = 2
  command = ["true"]
  send_to = ["operator"]
}
