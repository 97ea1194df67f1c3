package docker

import (
	"errors"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/google/go-cmp/cmp"

	"berth/shared/wire"
)

// A GPU request becomes Docker's device request (what `--gpus` sends); a
// malformed one is refused before anything is created.
func TestGPUDeviceRequest(t *testing.T) {
	c := newStubClient(t, newStubAPI())
	tests := []struct {
		name    string
		gpu     *wire.GPURequest
		want    []container.DeviceRequest
		wantErr error
	}{
		{name: "none", gpu: nil},
		{name: "one GPU", gpu: &wire.GPURequest{Count: 1, Capabilities: []string{"gpu", "compute", "utility"}},
			want: []container.DeviceRequest{{Count: 1, Capabilities: [][]string{{"gpu", "compute", "utility"}}}}},
		{name: "all GPUs", gpu: &wire.GPURequest{Count: -1, Capabilities: []string{"gpu"}},
			want: []container.DeviceRequest{{Count: -1, Capabilities: [][]string{{"gpu"}}}}},
		{name: "zero GPUs", gpu: &wire.GPURequest{Count: 0, Capabilities: []string{"gpu"}}, wantErr: ErrBadRequest},
		{name: "no capabilities", gpu: &wire.GPURequest{Count: 1}, wantErr: ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, host, _, err := c.buildCreate(wire.CreateContainerRequest{Name: "ws", Image: "img", GPU: tt.gpu})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, host.DeviceRequests); diff != "" {
				t.Errorf("device requests (-want +got):\n%s", diff)
			}
		})
	}
}
