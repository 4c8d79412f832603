//go:build !race

package soak

const raceBuild = false
