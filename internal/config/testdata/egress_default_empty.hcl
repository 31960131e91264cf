run "team" {
  egress_default = []
}

agent "a" {
  command = ["claude"]
}
