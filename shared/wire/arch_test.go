package wire

import "testing"

func TestNormalizeArch(t *testing.T) {
	tests := []struct{ in, want string }{
		{"amd64", "amd64"},
		{"x86_64", "amd64"},
		{"X86_64", "amd64"},
		{"x86-64", "amd64"},
		{"arm64", "arm64"},
		{"aarch64", "arm64"},
		{" ARM64 ", "arm64"},
		{"riscv64", "riscv64"},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := NormalizeArch(tt.in); got != tt.want {
				t.Errorf("NormalizeArch(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
