run "counts" {}

agent "zero" {
  count   = 0
  command = ["true"]
}

agent "many" {
  count   = 65
  command = ["true"]
}

agent "half" {
  count   = 1.5
  command = ["true"]
}

agent "word" {
  count   = "three"
  command = ["true"]
}

agent "null" {
  count   = null
  command = ["true"]
}

agent "self" {
  count   = count.index
  command = ["true"]
}

agent "plain" {
  command = ["echo", count.index]
}

agent "field" {
  count   = 2
  command = ["echo", count.value]
}
