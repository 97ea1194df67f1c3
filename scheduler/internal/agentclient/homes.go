package agentclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"berth/shared/wire"
)

// HomeExport lets a peer agent fetch a directory of this agent with the
// export's token (wire/homes.go).
func (c *Client) HomeExport(ctx context.Context, req wire.HomeExport) error {
	return c.call(ctx, http.MethodPost, wire.PathHomeExports, nil, req, nil)
}

// HomeImport asks this agent to copy a peer's export into req.Path and
// calls onProgress with each progress line. It returns the last line once
// the copy is verified and in place; a failed import is an *Error whose
// code says which side failed (ErrSourceFailed, ErrVerifyFailed, …).
func (c *Client) HomeImport(ctx context.Context, req wire.HomeImport, onProgress func(wire.HomeProgress)) (wire.HomeProgress, error) {
	b, err := json.Marshal(req)
	if err != nil {
		return wire.HomeProgress{}, err
	}
	resp, err := c.do(ctx, http.MethodPost, wire.PathHomeImports, nil, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return wire.HomeProgress{}, err
	}
	defer resp.Body.Close()
	var final wire.HomeProgress
	err = readNDJSON(resp.Body, func(p wire.HomeProgress) error {
		if p.Done {
			final = p
		} else if onProgress != nil {
			onProgress(p)
		}
		return nil
	})
	switch {
	case err != nil:
		return wire.HomeProgress{}, err
	case !final.Done:
		return wire.HomeProgress{}, fmt.Errorf("%w: home import on %s ended without a final line", ErrUnreachable, c.ServerID)
	case final.Code != "":
		return final, &Error{Status: http.StatusOK, Code: final.Code, Message: final.Error}
	}
	return final, nil
}
