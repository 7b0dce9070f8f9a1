package bundle_test

import (
	"bytes"
	"context"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"cleanroom.dev/cleanroom/cleanroom"
	"cleanroom.dev/cleanroom/cleanroom/attest"
	"cleanroom.dev/cleanroom/cleanroom/bundle"
	"cleanroom.dev/cleanroom/cleanroom/envelope"
	"cleanroom.dev/cleanroom/cleanroom/events"
	"cleanroom.dev/cleanroom/cleanroom/tlog"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/contracts"
	"cleanroom.dev/cleanroom/internal/bundletest"
)

func TestHonestBundleVerifies(t *testing.T) {
	w, run := world(t), honest(t)
	data, err := run.Bundle.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b, err := bundle.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	r, err := bundle.Verify(b, w.Contract, bundle.VerifyOptions{})
	if err != nil {
		t.Fatalf("%v\n%s", err, describeSteps(r))
	}
	if len(r.Steps) != 6 || !r.OK() || r.Result != nil {
		t.Fatalf("without a recipient: %d steps, ok %v, result %v\n%s", len(r.Steps), r.OK(), r.Result != nil, describeSteps(r))
	}
	for i, s := range r.Steps {
		if s.Step != bundle.Steps[i] || s.Detail == "" {
			t.Errorf("step %d is %q with detail %q", i, s.Step, s.Detail)
		}
	}
	if !strings.Contains(r.Steps[0].Detail, "genuine sev-snp-simulated report") || !strings.Contains(r.Steps[0].Detail, "pinned SIMULATED root") {
		t.Errorf("evidence detail: %s", r.Steps[0].Detail)
	}
	if r.Statement.RunID != run.RunID || r.Checkpoint == nil || r.RunFinishedIndex <= r.RunStartedIndex || len(r.Uploads) != 2 {
		t.Errorf("report: %+v", r)
	}
	for _, who := range []string{"advertiser", "measurer"} {
		r, err := bundle.Verify(b, w.Contract, bundle.VerifyOptions{Recipient: w.Keys[who]})
		if err != nil {
			t.Fatalf("%s: %v\n%s", who, err, describeSteps(r))
		}
		if len(r.Steps) != 7 || !bytes.Equal(r.Result, run.Plain) {
			t.Fatalf("%s: %d steps, result %d bytes (want %d)", who, len(r.Steps), len(r.Result), len(run.Plain))
		}
		if !strings.Contains(r.Steps[6].Detail, who+"'s key") {
			t.Errorf("decryption detail: %s", r.Steps[6].Detail)
		}
	}
}

func TestNonRecipientCannotDecrypt(t *testing.T) {
	w, run := world(t), honest(t)
	stranger, err := cleanroom.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	for name, id := range map[string]*cleanroom.Identity{"auditor": w.Keys["auditor"], "publisher": w.Keys["publisher"], "stranger": stranger} {
		if _, _, err := bundle.DecryptResult(run.Bundle.EncryptedResult, id, w.Contract, run.RunID); !errors.Is(err, envelope.ErrNotRecipient) {
			t.Errorf("%s: DecryptResult: %v, want ErrNotRecipient", name, err)
		}
		r, err := bundle.Verify(run.Bundle, w.Contract, bundle.VerifyOptions{Recipient: id})
		checkFailure(t, name, r, err, bundle.StepDecryption, bundle.PartRecipientKey, envelope.ErrNotRecipient)
		if r.Result != nil {
			t.Errorf("%s: a result was returned", name)
		}
	}
	// The envelope itself refuses a key it has no stanza for, whatever the
	// contract says: open it directly with the auditor's key.
	zero := bundle.ResultSchemaDigest
	_, _, err = envelope.Open(run.Bundle.EncryptedResult, w.Keys["auditor"].HPKE(), envelope.Expect{
		Kind: envelope.KindResult, ContractID: w.Contract.ID(), ObjectID: run.RunID, SchemaDigest: &zero})
	if !errors.Is(err, envelope.ErrNotRecipient) {
		t.Errorf("envelope.Open with the auditor's key: %v", err)
	}
	// A recipient of another run id is refused by the header check.
	if _, _, err := bundle.DecryptResult(run.Bundle.EncryptedResult, w.Keys["advertiser"], w.Contract, events.NewID()); !errors.Is(err, envelope.ErrMismatch) {
		t.Errorf("wrong run id: %v", err)
	}
}

// checkFailure checks that Verify failed at step, naming part, with an error
// wrapping ErrNotVerified and cause (when not nil), and that the report
// ends with that failed step.
func checkFailure(t *testing.T, name string, r *bundle.Report, err error, step bundle.Step, part string, cause error) {
	t.Helper()
	t.Logf("%s: %v", name, err)
	var ve *bundle.VerifyError
	if !errors.As(err, &ve) {
		t.Errorf("%s: Verify returned %v, want a *VerifyError\n%s", name, err, describeSteps(r))
		return
	}
	if !errors.Is(err, bundle.ErrNotVerified) {
		t.Errorf("%s: %v does not wrap ErrNotVerified", name, err)
	}
	if ve.Step != step || ve.Part != part {
		t.Errorf("%s: failed at step %q part %q, want %q part %q: %v\n%s", name, ve.Step, ve.Part, step, part, err, describeSteps(r))
	}
	if cause != nil && !errors.Is(err, cause) {
		t.Errorf("%s: %v does not wrap %v", name, err, cause)
	}
	if r == nil || len(r.Steps) == 0 {
		t.Errorf("%s: no report", name)
		return
	}
	last := r.Steps[len(r.Steps)-1]
	if last.OK || last.Step != step || last.Detail == "" || r.OK() {
		t.Errorf("%s: the report's last step is %+v", name, last)
	}
	for _, s := range r.Steps[:len(r.Steps)-1] {
		if !s.OK {
			t.Errorf("%s: step %s failed before the failing one", name, s.Step)
		}
	}
}

// editEvidence re-encodes the bundle's evidence with changed report or
// certificates.
func editEvidence(t *testing.T, b *bundle.Bundle, edit func(report, ek, ask, ark []byte) ([]byte, []byte, []byte, []byte)) {
	t.Helper()
	ev, err := attest.ParseEvidence(b.Evidence)
	if err != nil {
		t.Fatal(err)
	}
	snp := ev.(*attest.SNPEvidence)
	report, ek, ask, ark := edit(snp.Report(), snp.EndorsementKeyCert(), snp.ASKCert(), snp.ARKCert())
	ne, err := attest.NewSNPEvidence(snp.Platform(), report, ek, ask, ark)
	if err != nil {
		t.Fatal(err)
	}
	if b.Evidence, err = ne.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
}

// editProofs decodes both proofs, lets edit change them, and re-encodes
// them.
func editProofs(t *testing.T, b *bundle.Bundle, edit func(started, finished *tlog.InclusionProof)) {
	t.Helper()
	sp, err := tlog.ParseInclusionProof(b.RunStarted.Proof)
	if err != nil {
		t.Fatal(err)
	}
	fp, err := tlog.ParseInclusionProof(b.RunFinished.Proof)
	if err != nil {
		t.Fatal(err)
	}
	edit(sp, fp)
	if b.RunStarted.Proof, err = sp.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
	if b.RunFinished.Proof, err = fp.MarshalBinary(); err != nil {
		t.Fatal(err)
	}
}

// editCheckpoint rewrites the checkpoint of both proofs.
func editCheckpoint(t *testing.T, b *bundle.Bundle, edit func(lines []string)) {
	editProofs(t, b, func(sp, fp *tlog.InclusionProof) {
		lines := strings.Split(string(sp.Checkpoint), "\n")
		edit(lines)
		sp.Checkpoint = []byte(strings.Join(lines, "\n"))
		fp.Checkpoint = sp.Checkpoint
	})
}

func flip(b []byte, i int) {
	if i < 0 {
		i += len(b)
	}
	b[i] ^= 0x01
}

// TestTamperedBundles alters every part of an honest bundle, byte by byte or
// value by value, and checks that Verify refuses it at the step that checks
// that part.
func TestTamperedBundles(t *testing.T) {
	w, run := world(t), honest(t)
	other, err := bundletest.NewCoordinator()
	if err != nil {
		t.Fatal(err)
	}
	otherEvidence, err := other.StaticEvidence().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// The result envelope's header: preamble of 118+32 bytes, the
	// recipient count, then 1200-byte stanzas.
	const stanzas, stanza = 118 + 32 + 2, 1200

	cases := []struct {
		name   string
		tamper func(b *bundle.Bundle)
		step   bundle.Step
		part   string
		cause  error
	}{
		// Evidence and key.
		{"report byte", func(b *bundle.Bundle) {
			editEvidence(t, b, func(r, ek, ask, ark []byte) ([]byte, []byte, []byte, []byte) { flip(r, 0x90); return r, ek, ask, ark })
		}, bundle.StepEvidence, bundle.PartEvidence, attest.ErrNotGenuine},
		{"report signature", func(b *bundle.Bundle) {
			editEvidence(t, b, func(r, ek, ask, ark []byte) ([]byte, []byte, []byte, []byte) { flip(r, 0x2a0); return r, ek, ask, ark })
		}, bundle.StepEvidence, bundle.PartEvidence, attest.ErrNotGenuine},
		{"VCEK certificate signature", func(b *bundle.Bundle) {
			editEvidence(t, b, func(r, ek, ask, ark []byte) ([]byte, []byte, []byte, []byte) { flip(ek, -1); return r, ek, ask, ark })
		}, bundle.StepEvidence, bundle.PartEvidence, attest.ErrNotGenuine},
		{"ARK swapped for another platform's", func(b *bundle.Bundle) {
			ev, _ := attest.ParseEvidence(otherEvidence)
			otherARK := ev.(*attest.SNPEvidence).ARKCert()
			editEvidence(t, b, func(r, ek, ask, ark []byte) ([]byte, []byte, []byte, []byte) { return r, ek, ask, otherARK })
		}, bundle.StepEvidence, bundle.PartEvidence, attest.ErrNotGenuine},
		{"evidence of another coordinator", func(b *bundle.Bundle) { b.Evidence = otherEvidence },
			bundle.StepEvidence, bundle.PartEvidence, attest.ErrNotGenuine},
		{"evidence bytes", func(b *bundle.Bundle) { flip(b.Evidence, 3) },
			bundle.StepEvidence, bundle.PartEvidence, attest.ErrMalformed},
		{"coordinator key of someone else", func(b *bundle.Bundle) { b.CoordinatorKey = w.Keys["advertiser"].Public().Bytes() },
			bundle.StepEvidence, bundle.PartCoordinatorKey, attest.ErrRefused},
		{"coordinator key of the other coordinator", func(b *bundle.Bundle) { b.CoordinatorKey = other.PublicKey().Bytes() },
			bundle.StepEvidence, bundle.PartCoordinatorKey, attest.ErrRefused},
		{"coordinator key truncated", func(b *bundle.Bundle) { b.CoordinatorKey = b.CoordinatorKey[:100] },
			bundle.StepEvidence, bundle.PartCoordinatorKey, cleanroom.ErrBadKey},

		// Statement.
		{"statement payload byte", func(b *bundle.Bundle) { flip(b.Statement, len(b.Statement)/2) },
			bundle.StepStatement, bundle.PartStatement, cleanroom.ErrBadSignature},
		{"statement signature", func(b *bundle.Bundle) { flip(b.Statement, -1) },
			bundle.StepStatement, bundle.PartStatement, cleanroom.ErrBadSignature},
		{"statement truncated", func(b *bundle.Bundle) { b.Statement = b.Statement[:len(b.Statement)-10] },
			bundle.StepStatement, bundle.PartStatement, cleanroom.ErrBadSignature},
		{"statement signed by another key", func(b *bundle.Bundle) {
			st, err := bundle.VerifyStatement(b.Statement, w.Coordinator.PublicKey())
			if err != nil {
				t.Fatal(err)
			}
			if b.Statement, err = st.Sign(w.Keys["measurer"]); err != nil {
				t.Fatal(err)
			}
		}, bundle.StepStatement, bundle.PartStatement, cleanroom.ErrBadSignature},
		{"upload statement signed with the wrong content type", func(b *bundle.Bundle) {
			// An upload statement's bytes in the statement's place.
			b.Statement = w.Uploads["impressions"].Signed
		}, bundle.StepStatement, bundle.PartStatement, cleanroom.ErrBadSignature},

		// Log.
		{"run.started entry", func(b *bundle.Bundle) { flip(b.RunStarted.Entry, 10) },
			bundle.StepLog, bundle.PartRunStarted, tlog.ErrBadProof},
		{"run.finished entry", func(b *bundle.Bundle) { flip(b.RunFinished.Entry, -3) },
			bundle.StepLog, bundle.PartRunFinished, tlog.ErrBadProof},
		{"run.started proof hash", func(b *bundle.Bundle) {
			editProofs(t, b, func(sp, _ *tlog.InclusionProof) { sp.Hashes[0][5] ^= 1 })
		}, bundle.StepLog, bundle.PartRunStarted, tlog.ErrBadProof},
		{"run.finished proof last hash", func(b *bundle.Bundle) {
			editProofs(t, b, func(_, fp *tlog.InclusionProof) { fp.Hashes[len(fp.Hashes)-1][31] ^= 1 })
		}, bundle.StepLog, bundle.PartRunFinished, tlog.ErrBadProof},
		{"run.finished proof hash dropped", func(b *bundle.Bundle) {
			editProofs(t, b, func(_, fp *tlog.InclusionProof) { fp.Hashes = fp.Hashes[1:] })
		}, bundle.StepLog, bundle.PartRunFinished, tlog.ErrBadProof},
		{"run.started proof index", func(b *bundle.Bundle) {
			editProofs(t, b, func(sp, _ *tlog.InclusionProof) { sp.Index-- })
		}, bundle.StepLog, bundle.PartRunStarted, tlog.ErrBadProof},
		{"entries swapped", func(b *bundle.Bundle) { b.RunStarted, b.RunFinished = b.RunFinished, b.RunStarted },
			bundle.StepLog, bundle.PartRunStarted, tlog.ErrBadProof},
		{"run.started proof malformed", func(b *bundle.Bundle) { b.RunStarted.Proof = b.RunStarted.Proof[:40] },
			bundle.StepLog, bundle.PartRunStarted, tlog.ErrBadProof},
		{"checkpoint signature", func(b *bundle.Bundle) {
			editCheckpoint(t, b, func(l []string) { l[4] = l[4][:len(l[4])-4] + "AAA=" })
		}, bundle.StepLog, bundle.PartCheckpoint, tlog.ErrBadCheckpoint},
		{"checkpoint size", func(b *bundle.Bundle) {
			editCheckpoint(t, b, func(l []string) { l[1] = "1" + l[1] })
		}, bundle.StepLog, bundle.PartCheckpoint, tlog.ErrBadCheckpoint},
		{"checkpoint root", func(b *bundle.Bundle) {
			editCheckpoint(t, b, func(l []string) {
				// Change the root's first character (to a different one:
				// a root can start with "A").
				c := "A"
				if l[2][0] == 'A' {
					c = "B"
				}
				l[2] = c + l[2][1:]
			})
		}, bundle.StepLog, bundle.PartCheckpoint, tlog.ErrBadCheckpoint},
		{"checkpoint origin", func(b *bundle.Bundle) {
			editCheckpoint(t, b, func(l []string) { l[0] = tlog.Origin(w.Keys["auditor"].Public()) })
		}, bundle.StepLog, bundle.PartCheckpoint, tlog.ErrBadCheckpoint},
		{"proofs under different checkpoints", func(b *bundle.Bundle) {
			editProofs(t, b, func(sp, _ *tlog.InclusionProof) { sp.Checkpoint = append(sp.Checkpoint, '\n') })
		}, bundle.StepLog, bundle.PartCheckpoint, tlog.ErrBadCheckpoint},

		// Encrypted result.
		{"encrypted result bit flip", func(b *bundle.Bundle) { flip(b.EncryptedResult, len(b.EncryptedResult)/2) },
			bundle.StepEncryptedResult, bundle.PartEncryptedResult, nil},
		{"encrypted result header bit flip", func(b *bundle.Bundle) { flip(b.EncryptedResult, 30) },
			bundle.StepEncryptedResult, bundle.PartEncryptedResult, nil},
		{"encrypted result truncated", func(b *bundle.Bundle) { b.EncryptedResult = b.EncryptedResult[:len(b.EncryptedResult)-7] },
			bundle.StepEncryptedResult, bundle.PartEncryptedResult, nil},
		{"encrypted result with bytes appended", func(b *bundle.Bundle) { b.EncryptedResult = append(b.EncryptedResult, 0) },
			bundle.StepEncryptedResult, bundle.PartEncryptedResult, nil},
		{"encrypted result stanzas swapped", func(b *bundle.Bundle) {
			e := b.EncryptedResult
			s0 := bytes.Clone(e[stanzas : stanzas+stanza])
			copy(e[stanzas:], e[stanzas+stanza:stanzas+2*stanza])
			copy(e[stanzas+stanza:], s0)
		}, bundle.StepEncryptedResult, bundle.PartEncryptedResult, nil},
		{"encrypted result of another run", func(b *bundle.Bundle) {
			enc, _, err := bundle.EncryptResult([]byte("x"), w.Contract, events.NewID())
			if err != nil {
				t.Fatal(err)
			}
			b.EncryptedResult = enc
		}, bundle.StepEncryptedResult, bundle.PartEncryptedResult, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := clone(run.Bundle)
			tc.tamper(b)
			// The tampered bundle still travels: only Verify can refuse it.
			data, err := b.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if b, err = bundle.Parse(data); err != nil {
				t.Fatal(err)
			}
			r, err := bundle.Verify(b, w.Contract, bundle.VerifyOptions{Recipient: w.Keys["advertiser"]})
			checkFailure(t, tc.name, r, err, tc.step, tc.part, tc.cause)
			if r != nil && r.Result != nil {
				t.Error("a result was released")
			}
		})
	}
}

// TestMisbehavingCoordinator makes bundles that a coordinator signed and
// logged wrongly, which no byte flip produces, and checks that Verify
// names the wrong part.
func TestMisbehavingCoordinator(t *testing.T) {
	w := world(t)
	c := w.Contract
	ctx := context.Background()
	advertiser := w.Keys["advertiser"]
	cases := []struct {
		name  string
		opts  bundletest.RunOptions
		step  bundle.Step
		part  string
		cause error
	}{
		{"upload statement of another dataset", bundletest.RunOptions{EditStatement: func(s *bundle.Statement) {
			s.Datasets[0].UploadStatement = w.Uploads["conversions"].Signed
		}}, bundle.StepUploads, bundle.PartUploadStatement("impressions"), cleanroom.ErrBadSignature},
		{"upload statement altered", bundletest.RunOptions{EditStatement: func(s *bundle.Statement) {
			u := bytes.Clone(s.Datasets[1].UploadStatement)
			flip(u, -1)
			s.Datasets[1].UploadStatement = u
		}}, bundle.StepUploads, bundle.PartUploadStatement("conversions"), cleanroom.ErrBadSignature},
		{"row count not the provider's", bundletest.RunOptions{EditStatement: func(s *bundle.Statement) {
			s.Datasets[0].RowCount++
		}}, bundle.StepUploads, bundle.PartUploadStatement("impressions"), upload.ErrMismatch},
		{"upload statement for another ciphertext", bundletest.RunOptions{
			EditStatement: func(s *bundle.Statement) { s.Datasets[0].CiphertextSHA256[0] ^= 1 },
			EditRunStarted: func(e *events.Event) {
				d := w.Uploads["impressions"].SHA256
				d[0] ^= 1
				e.RunStarted.Datasets["impressions"] = hex.EncodeToString(d[:])
			},
		}, bundle.StepUploads, bundle.PartUploadStatement("impressions"), upload.ErrMismatch},
		{"run.started with another algorithm", bundletest.RunOptions{EditRunStarted: func(e *events.Event) {
			e.RunStarted.AlgorithmSHA256 = strings.Repeat("ab", 32)
		}}, bundle.StepEntries, bundle.PartRunStarted, nil},
		{"run.started with another dataset digest", bundletest.RunOptions{EditRunStarted: func(e *events.Event) {
			e.RunStarted.Datasets["conversions"] = strings.Repeat("cd", 32)
		}}, bundle.StepEntries, bundle.PartRunStarted, nil},
		{"run.started of another run", bundletest.RunOptions{EditRunStarted: func(e *events.Event) {
			e.RunStarted.RunID = events.NewID()
		}}, bundle.StepEntries, bundle.PartRunStarted, nil},
		{"run.started of another contract", bundletest.RunOptions{EditRunStarted: func(e *events.Event) {
			e.Contract = strings.Repeat("ef", 32)
		}}, bundle.StepEntries, bundle.PartRunStarted, nil},
		{"run.finished with other row counts", bundletest.RunOptions{EditRunFinished: func(e *events.Event) {
			e.RunFinished.RowsSuppressed = 0
		}}, bundle.StepEntries, bundle.PartRunFinished, nil},
		{"run.finished with another statement", bundletest.RunOptions{EditRunFinished: func(e *events.Event) {
			e.RunFinished.Statement = w.Uploads["impressions"].Signed
		}}, bundle.StepEntries, bundle.PartRunFinished, nil},
		{"run.finished with another result commitment", bundletest.RunOptions{EditRunFinished: func(e *events.Event) {
			e.RunFinished.ResultCommitment = strings.Repeat("01", 32)
		}}, bundle.StepEntries, bundle.PartRunFinished, nil},
		{"run.finished is a run.aborted", bundletest.RunOptions{EditRunFinished: func(e *events.Event) {
			e.Type, e.RunAborted, e.RunFinished = events.TypeRunAborted, &events.RunAborted{RunID: e.RunFinished.RunID, Reason: "x"}, nil
		}}, bundle.StepEntries, bundle.PartRunFinished, nil},
		{"statement names another algorithm", bundletest.RunOptions{EditStatement: func(s *bundle.Statement) {
			s.AlgorithmSHA256[0] ^= 1
		}}, bundle.StepStatement, bundle.PartStatement, nil},
		{"statement names other recipients", bundletest.RunOptions{EditStatement: func(s *bundle.Statement) {
			s.Recipients = s.Recipients[:1]
		}}, bundle.StepStatement, bundle.PartStatement, nil},
		{"statement names the wrong run.started index", bundletest.RunOptions{EditStatement: func(s *bundle.Statement) {
			s.RunStartedIndex--
		}}, bundle.StepLog, bundle.PartRunStarted, tlog.ErrBadProof},
		{"result sealed to one recipient only", bundletest.RunOptions{Encrypt: func(plain []byte, c *contracts.Contract, runID string) ([]byte, [32]byte, error) {
			return seal(plain, c.ID(), runID, bundle.ResultSchemaDigest, advertiser.Public())
		}}, bundle.StepEncryptedResult, bundle.PartEncryptedResult, envelope.ErrMismatch},
		{"result sealed to a stranger too", bundletest.RunOptions{Encrypt: func(plain []byte, c *contracts.Contract, runID string) ([]byte, [32]byte, error) {
			return seal(plain, c.ID(), runID, bundle.ResultSchemaDigest, advertiser.Public(), w.Keys["measurer"].Public(), w.Keys["auditor"].Public())
		}}, bundle.StepEncryptedResult, bundle.PartEncryptedResult, envelope.ErrMismatch},
		{"result sealed for another run", bundletest.RunOptions{Encrypt: func(plain []byte, c *contracts.Contract, _ string) ([]byte, [32]byte, error) {
			return bundle.EncryptResult(plain, c, events.NewID())
		}}, bundle.StepEncryptedResult, bundle.PartEncryptedResult, envelope.ErrMismatch},
		{"result with a schema digest", bundletest.RunOptions{Encrypt: func(plain []byte, c *contracts.Contract, runID string) ([]byte, [32]byte, error) {
			return seal(plain, c.ID(), runID, c.Datasets[0].SchemaDigest(), advertiser.Public(), w.Keys["measurer"].Public())
		}}, bundle.StepEncryptedResult, bundle.PartEncryptedResult, envelope.ErrMismatch},
		{"statement names another result commitment", bundletest.RunOptions{EditStatement: func(s *bundle.Statement) {
			s.ResultCommitment[7] ^= 1
		}}, bundle.StepDecryption, bundle.PartEncryptedResult, nil},
		{"statement names the plain SHA-256 of the result", bundletest.RunOptions{EditStatement: func(s *bundle.Statement) {
			res, err := bundletest.Result()
			if err != nil {
				t.Fatal(err)
			}
			s.ResultCommitment = sha256.Sum256(res)
		}}, bundle.StepDecryption, bundle.PartEncryptedResult, nil},
		{"result without its salt", bundletest.RunOptions{Encrypt: func(plain []byte, c *contracts.Contract, runID string) ([]byte, [32]byte, error) {
			enc, err := sealRaw(plain[:16], c.ID(), runID, bundle.ResultSchemaDigest, advertiser.Public(), w.Keys["measurer"].Public())
			return enc, sha256.Sum256(plain[:16]), err
		}}, bundle.StepDecryption, bundle.PartEncryptedResult, bundle.ErrMalformed},
		{"result under another salt", bundletest.RunOptions{Encrypt: func(plain []byte, c *contracts.Contract, runID string) ([]byte, [32]byte, error) {
			enc, _, err := seal(plain, c.ID(), runID, bundle.ResultSchemaDigest, advertiser.Public(), w.Keys["measurer"].Public())
			return enc, bundle.CommitResult(cleanroom.NewSalt(), plain), err
		}}, bundle.StepDecryption, bundle.PartEncryptedResult, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := w.Run(ctx, tc.opts)
			if !errors.Is(err, bundle.ErrNotVerified) && tc.step != bundle.StepDecryption {
				t.Errorf("Assemble accepted the bundle or failed otherwise: %v", err)
			}
			opts := tc.opts
			opts.Unchecked = true
			run, err := w.Run(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			r, err := bundle.Verify(run.Bundle, c, bundle.VerifyOptions{Recipient: advertiser})
			checkFailure(t, tc.name, r, err, tc.step, tc.part, tc.cause)
		})
	}
}

// seal makes a result envelope with any header and recipients: a fresh
// salt and plain, and the commitment to plain with that salt.
func seal(plain []byte, contractID [32]byte, runID string, schema [32]byte, to ...*cleanroom.PublicKey) ([]byte, [32]byte, error) {
	salt := cleanroom.NewSalt()
	enc, err := sealRaw(append(salt[:], plain...), contractID, runID, schema, to...)
	return enc, bundle.CommitResult(salt, plain), err
}

// sealRaw makes a result envelope of exactly these plaintext bytes.
func sealRaw(plain []byte, contractID [32]byte, runID string, schema [32]byte, to ...*cleanroom.PublicKey) ([]byte, error) {
	var buf bytes.Buffer
	keys := make([]hpke.PublicKey, len(to))
	for i, k := range to {
		keys[i] = k.HPKE()
	}
	ew, err := envelope.NewWriter(&buf, envelope.Header{Kind: envelope.KindResult, ContractID: contractID, ObjectID: runID, SchemaDigest: schema, SegmentSize: 4096}, keys)
	if err != nil {
		return nil, err
	}
	if _, err := ew.Write(plain); err != nil {
		return nil, err
	}
	if err := ew.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// TestOtherContract verifies an honest bundle under a contract that pins the
// same coordinator but is another contract.
func TestOtherContract(t *testing.T) {
	w, run := world(t), honest(t)
	text := bytes.Replace(w.ContractText, []byte("name: bundle-test"), []byte("name: another-contract"), 1)
	other, err := contracts.Parse(text, contracts.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := bundle.Verify(run.Bundle, other, bundle.VerifyOptions{})
	checkFailure(t, "other contract", r, err, bundle.StepStatement, bundle.PartStatement, nil)

	// A contract that pins another measurement refuses the evidence.
	m := w.Coordinator.Measurement()
	text = bytes.Replace(w.ContractText, []byte(hex.EncodeToString(m[:])), []byte(strings.Repeat("00", 48)), 1)
	if other, err = contracts.Parse(text, contracts.ParseOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err = bundle.Verify(run.Bundle, other, bundle.VerifyOptions{})
	checkFailure(t, "other measurement", r, err, bundle.StepEvidence, bundle.PartEvidence, attest.ErrRefused)
}

func TestProveRunRefusesReversedIndices(t *testing.T) {
	w := world(t)
	if _, _, err := bundle.ProveRun(context.Background(), w.Log, 5, 5); err == nil {
		t.Fatal("ProveRun accepted run.finished at run.started's index")
	}
}

func TestEncryptResult(t *testing.T) {
	w := world(t)
	runID := events.NewID()
	plain := bytes.Repeat([]byte("result "), 400000) // several segments
	enc, commitment, err := bundle.EncryptResult(plain, w.Contract, runID)
	if err != nil {
		t.Fatal(err)
	}
	if commitment == sha256.Sum256(plain) {
		t.Fatal("the result commitment is the plain SHA-256 of the result")
	}
	hdr, err := envelope.ParseHeader(bytes.NewReader(enc))
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Kind != envelope.KindResult || hdr.ObjectID != runID || hdr.ContractID != w.Contract.ID() ||
		hdr.SchemaDigest != ([32]byte{}) || hdr.SegmentSize != bundle.ResultSegmentSize || len(hdr.Recipients) != 2 {
		t.Fatalf("header: %+v", hdr)
	}
	for _, who := range []string{"advertiser", "measurer"} {
		got, salt, err := bundle.DecryptResult(enc, w.Keys[who], w.Contract, runID)
		if err != nil || !bytes.Equal(got, plain) || bundle.CommitResult(salt, got) != commitment {
			t.Fatalf("%s: %v", who, err)
		}
	}
	// A second encryption of the same result commits with another salt.
	if _, again, err := bundle.EncryptResult(plain, w.Contract, runID); err != nil || again == commitment {
		t.Fatalf("two encryptions of one result give the same commitment (%v)", err)
	}
	if _, _, err := bundle.EncryptResult(plain, w.Contract, "RUN"); err == nil {
		t.Error("a run id that is not 32 hex digits was accepted")
	}
	empty, _, err := bundle.EncryptResult(nil, w.Contract, runID)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := bundle.DecryptResult(empty, w.Keys["advertiser"], w.Contract, runID); err != nil || len(got) != 0 {
		t.Fatalf("empty result: %v, %d bytes", err, len(got))
	}
}

// BenchmarkVerify measures the offline verification of a small result's
// bundle, without and with decryption.
func BenchmarkVerify(b *testing.B) {
	w, run := world(b), honest(b)
	data, err := run.Bundle.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts bundle.VerifyOptions
	}{{"verify", bundle.VerifyOptions{}}, {"verify+decrypt", bundle.VerifyOptions{Recipient: w.Keys["advertiser"]}}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				bd, err := bundle.Parse(data)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := bundle.Verify(bd, w.Contract, tc.opts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "bundle-bytes")
		})
	}
}
