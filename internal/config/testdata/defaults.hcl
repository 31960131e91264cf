# The smallest valid file: every other attribute takes its default.
run "minimal" {}

agent "solo" {
  command = ["sleep", "infinity"]
}
