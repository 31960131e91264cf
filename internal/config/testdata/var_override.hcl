variable "command" {
  description = "argv for every agent"
  type        = list(string)
  default     = ["sleep", "infinity"]
}

variable "image" {
  default = "localhost/runner-agent:latest"
}

variable "agents" {
  type    = number
  default = 1
}

variable "user" {}

variable "unused" {
  default = null
}

run "vars" {}

agent "w" {
  count   = var.agents
  image   = var.image
  command = var.command
  user    = var.user
}
