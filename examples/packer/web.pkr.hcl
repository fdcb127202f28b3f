# kiln under Packer: bake examples/app-host.yaml with the kiln builder,
# publish it with kiln-push, and hand an instance's seed to a second source
# through the kiln-seed data source. See docs/packer.md.
#
#   packer build examples/packer/web.pkr.hcl                 # push into ./store, an OCI layout
#   packer build -var ref=registry.example.com/team/app-host:1 examples/packer/web.pkr.hcl

packer {
  required_plugins {
    kiln = {
      version = ">= 0.1.0"
      source  = "github.com/kiln-project/kiln"
    }
  }
}

variable "recipe" {
  type        = string
  default     = ""
  description = "the kiln recipe to bake; default: examples/app-host.yaml, beside this template's directory"
}

variable "ref" {
  type        = string
  default     = "oci:./store:app-host"
  description = "where kiln-push publishes the image: a registry reference or an OCI layout directory"
}

variable "insecure" {
  type        = bool
  default     = false
  description = "allow plain HTTP to the registry (loopback registries always are)"
}

variable "cache_dir" {
  type        = string
  default     = ""
  description = "kiln's cache; empty for kiln's default, shared with the kiln CLI"
}

variable "no_cache" {
  type        = bool
  default     = false
  description = "bake again even when kiln's cache holds the image of this recipe (bases and packages are still reused)"
}

locals {
  recipe = var.recipe != "" ? var.recipe : abspath("${path.root}/../app-host.yaml")
}

source "kiln" "app-host" {
  recipe           = local.recipe
  cache_dir        = var.cache_dir
  no_cache         = var.no_cache
  output_directory = "output-app-host"
}

# One instance's NoCloud seed, rendered from the same recipe.
data "kiln-seed" "web-1" {
  recipe   = local.recipe
  instance = "web-1"
  index    = 1
  output   = "output-seed/web-1.iso"
}

# No VM boots here: the file builder writes the seed's user-data, where a
# QEMU source would take cd_content = { "user-data" = ..., "meta-data" = ... }
# or cd_files = [data.kiln-seed.web-1.path] with cd_label = "cidata".
source "file" "seed" {
  content = data.kiln-seed.web-1.user_data
  target  = "output-seed/user-data"
}

build {
  name    = "web"
  sources = ["source.kiln.app-host"]

  post-processor "kiln-push" {
    ref      = var.ref
    insecure = var.insecure
    annotations = {
      "org.opencontainers.image.title" = "app-host"
    }
  }
}

build {
  name    = "seed"
  sources = ["source.file.seed"]
}
