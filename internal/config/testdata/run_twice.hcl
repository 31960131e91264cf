run "one" {}

run "two" {}

agent "a" {
  command = ["true"]
}
