run "ops" {}

agent "a" {
  command      = ["true"]
  restart      = "sometimes"
  max_restarts = -1
}

agent "b" {
  command      = ["true"]
  restart      = "On-Failure"
  max_restarts = 1001
}

agent "c" {
  command      = ["true"]
  restart      = ["always"]
  max_restarts = 2.5
}

agent "d" {
  command      = ["true"]
  restart      = null
  max_restarts = "many"
}
