agent "a" {
  command = ["true"]
}
