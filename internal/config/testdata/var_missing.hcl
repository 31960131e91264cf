variable "image" {
  type = string
}

run "vars" {}

agent "a" {
  count   = 2
  image   = var.image
  command = ["true"]
}
