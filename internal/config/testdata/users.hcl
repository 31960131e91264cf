run "users" {}

agent "root" {
  command = ["true"]
  user    = "0"
}

agent "root-uid" {
  command = ["true"]
  user    = "0:1000"
}

agent "root-gid" {
  command = ["true"]
  user    = "1000:0"
}

agent "by-name" {
  command = ["true"]
  user    = "agent"
}

agent "no-gid" {
  command = ["true"]
  user    = "1000:"
}

agent "negative" {
  command = ["true"]
  user    = "-5"
}

agent "too-big" {
  command = ["true"]
  user    = "4294967295"
}

agent "number" {
  command = ["true"]
  user    = 0
}

agent "counted" {
  count   = 2
  command = ["true"]
  user    = "${count.index}:${count.index + 5}"
}
