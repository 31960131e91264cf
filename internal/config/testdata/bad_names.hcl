run "Demo" {}

agent "Alice" {
  command = ["true"]
}

agent "1st" {
  command = ["true"]
}

agent "has_underscore" {
  command = ["true"]
}

agent "" {
  command = ["true"]
}

agent "a-very-long-agent-name-that-is-39-chars" {
  count   = 3
  command = ["true"]
}

agent "a-name-that-is-exactly-forty-characters" {
  command = ["true"]
}
