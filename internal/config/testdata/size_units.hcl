run "units" {}

# A forgotten unit: a bare number is bytes.
agent "a" {
  command  = ["true"]
  memory   = 256
  tmp_size = "64"
}

# Bytes on purpose are fine when they are enough.
agent "b" {
  command = ["true"]
  memory  = 268435456
}
