run "team" {}

agent "long" {
  command = ["true"]
  brief   = file("long.txt")
}

agent "empty" {
  command = ["true"]
  brief   = ""
}

agent "nul" {
  command = ["true"]
  brief   = "a\u0000b"
}

agent "list" {
  command = ["true"]
  brief   = ["a", "b"]
}

agent "counted" {
  count   = 2
  command = ["true"]
  brief   = count.index == 0 ? "" : "ok"
}

agent "fine" {
  command = ["true"]
  brief   = null
}
