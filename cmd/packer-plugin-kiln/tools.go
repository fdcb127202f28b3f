//go:build tools

// The tools go generate runs, pinned by go.mod (go run resolves them from
// this module).
package main

import _ "github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc"
