run "broken" {}

agent "a" {
  command = ["sh", "-c"
  user    = "1000"
}
