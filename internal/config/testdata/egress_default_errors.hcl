run "team" {
  egress_default = ["api.anthropic.com", "*", "https://pypi.org/simple"]
}

agent "a" {
  command = ["claude"]
}
