variable "pids" {
  type = number
}

variable "cmd" {
  type = list(string)
}

variable "tags" {
  type = list(string)
}

run "vars" {}

agent "a" {
  command = var.cmd
  pids    = var.pids
}
