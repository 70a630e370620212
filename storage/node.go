package storage

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

const nodeFile = "node.json"

// NodeInfo is the identity of this node, recorded in <data_dir>/node.json at
// first start and never changed afterwards.
type NodeInfo struct {
	NodeID string `json:"node_id"` // 32 lowercase hex characters
	Site   string `json:"site"`
}

// loadOrCreateNode reads node.json, or writes a fresh one with a random
// node ID and the given site if there is none.
func loadOrCreateNode(dir, site string) (NodeInfo, error) {
	path := filepath.Join(dir, nodeFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createNode(dir, site)
	}
	if err != nil {
		return NodeInfo{}, fmt.Errorf("storage: read %s: %w", path, err)
	}
	var n NodeInfo
	if err := json.Unmarshal(b, &n); err != nil {
		return NodeInfo{}, fmt.Errorf("storage: parse %s: %w", path, err)
	}
	if !isLowerHex(n.NodeID, 32) || n.Site == "" {
		return NodeInfo{}, fmt.Errorf("storage: %s: invalid node_id %q or empty site", path, n.NodeID)
	}
	return n, nil
}

// createNode writes node.json atomically (temp file, fsync, rename, fsync dir).
func createNode(dir, site string) (NodeInfo, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return NodeInfo{}, fmt.Errorf("storage: node id: %w", err)
	}
	n := NodeInfo{NodeID: hex.EncodeToString(id), Site: site}
	b, err := json.MarshalIndent(n, "", "  ")
	if err != nil {
		return NodeInfo{}, fmt.Errorf("storage: encode node.json: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, nodeFile), append(b, '\n')); err != nil {
		return NodeInfo{}, fmt.Errorf("storage: write node.json: %w", err)
	}
	return n, nil
}

// writeFileAtomic writes data to path through a temp file in the same
// directory, so a crash leaves either no file or the whole file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncDir fsyncs a directory, making renames and creations in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
