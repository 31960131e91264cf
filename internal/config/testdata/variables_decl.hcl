variable "x" {
  default = 1
}

variable "x" {
  default = 2
}

variable "bad name" {}

variable "t" {
  type = strin
}

variable "mismatch" {
  type    = number
  default = "ten"
}

variable "nums" {
  type    = map(list(number))
  default = { a = [1, "two"] }
}

variable "computed" {
  default = upper("a")
}

variable "described" {
  description = ["not", "a", "string"]
  default     = 1
}

run "vars" {}

agent "a" {
  command = ["true"]
}
