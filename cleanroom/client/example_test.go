package client_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"strings"

	"cleanroom.dev/cleanroom/cleanroom/audit"
	"cleanroom.dev/cleanroom/cleanroom/client"
	"cleanroom.dev/cleanroom/cleanroom/upload"
	"cleanroom.dev/cleanroom/connectors"
)

// The examples are the participants' programs, each on a contract of its
// own on one coordinator that example_env_test.go serves (coordinator.Serve
// on the simulated platform). exampleContract(stage) gives a contract
// played up to stage by the other parties: its text, signatures, keys and
// the coordinator's URL, as each party holds them.

func ExampleClient_Attest() {
	ex := exampleContract(stageSigned)
	cl, err := client.New(ex.URL, client.Options{Contract: ex.Contract, Identity: ex.Key("publisher")})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	// Fresh evidence, bound to a nonce, checked against the contract's
	// coordinator section.
	a, err := cl.Attest(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(a.Claims.Platform, a.Document.PublicKeys[0].Equal(ex.CoordinatorKey))
	// Output: sev-snp-simulated true
}

func ExampleClient_RegisterContract() {
	ex := exampleContract(stageSigned)
	cl, err := client.New(ex.URL, client.Options{Contract: ex.Contract, Identity: ex.Key("publisher")})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	// The contract file and every participant's signature file.
	reg, err := cl.RegisterContract(context.Background(), ex.Text, ex.Signatures)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(reg.ContractID == ex.Contract.ID().String(), reg.Already)
	// Output: true false
}

func ExampleClient_UploadDataset() {
	ex := exampleContract(stageRegistered)
	cl, err := client.New(ex.URL, client.Options{Contract: ex.Contract, Identity: ex.Key("publisher")})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	// Any connectors reader: CSV, Parquet, Arrow or JSON lines, read as the
	// contract's columns.
	rows, err := connectors.NewReader(strings.NewReader(impressionsCSV), connectors.FormatCSV,
		ex.Contract.Dataset("impressions").Columns, connectors.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer rows.Release()
	rec, err := cl.UploadDataset(context.Background(), "impressions", rows, client.UploadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rec.Dataset, rec.Rows)
	// Output: impressions 5
}

func ExampleEncryptDataset() {
	ex := exampleContract(stageRegistered)
	// The coordinator's identity document, kept from `cleanroomd identity`
	// or Client.Identity; EncryptDataset verifies it against the contract.
	doc := ex.IdentityDocument
	rows, err := connectors.NewReader(strings.NewReader(impressionsCSV), connectors.FormatCSV,
		ex.Contract.Dataset("impressions").Columns, connectors.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer rows.Release()
	var envelope bytes.Buffer
	enc, a, err := client.EncryptDataset(&envelope, rows, ex.Contract, "impressions", doc, ex.Key("publisher"), upload.EncryptOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(a.Claims.Platform, enc.Rows, int64(envelope.Len()) == enc.Summary.Size, len(enc.Signed) > 0)
	// Output: sev-snp-simulated 5 true true
}

func ExampleClient_SubmitAlgorithm() {
	ex := exampleContract(stageUploaded)
	cl, err := client.New(ex.URL, client.Options{Contract: ex.Contract, Identity: ex.Key("measurer")})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	// The query whose SHA-256 the contract names (not confidential: no
	// salt).
	rec, err := cl.SubmitAlgorithm(context.Background(), []byte(exampleQuery), nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rec.SHA256 == fmt.Sprintf("%x", ex.Contract.Algorithm.SHA256))
	// Output: true
}

func ExampleClient_Run() {
	ex := exampleContract(stageSubmitted)
	cl, err := client.New(ex.URL, client.Options{Contract: ex.Contract, Identity: ex.Key("advertiser")})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	rs, err := cl.Run(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rs.Status, rs.RowsKept, rs.RowsSuppressed)
	// Output: finished 1 2
}

func ExampleClient_Result() {
	ex := exampleContract(stageRun)
	cl, err := client.New(ex.URL, client.Options{Contract: ex.Contract, Identity: ex.Key("advertiser")})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	// Downloaded, verified down to the coordinator's attestation, and
	// decrypted with the recipient's key.
	res, err := cl.Result(context.Background(), ex.RunID)
	if err != nil {
		log.Fatal(err)
	}
	rows, err := client.ResultRecords(res.Report)
	if err != nil {
		log.Fatal(err)
	}
	defer rows.Release()
	if _, err := connectors.Write(os.Stdout, connectors.FormatCSV, rows, connectors.WriteOptions{}); err != nil {
		log.Fatal(err)
	}
	// Output:
	// campaign,users,revenue
	// spring,3,31.5
}

func ExampleVerifyResult() {
	ex := exampleContract(stageFetched)
	// A bundle kept on disk, verified offline: no key, no network.
	r, err := client.VerifyResult(ex.Bundle, ex.Contract, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Statement.RunID == ex.RunID, r.Statement.RowsKept, r.Statement.RowsSuppressed)
	// Output: true 1 2
}

func ExampleClient_AuditLog() {
	ex := exampleContract(stageFetched)
	cl, err := client.New(ex.URL, client.Options{Contract: ex.Contract, Identity: ex.Key("auditor")})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	// The auditor's state: the checkpoint kept from the last audit.
	st, err := audit.OpenState(ex.StateDir)
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	rep, err := cl.AuditLog(context.Background(), ex.Text, st)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range rep.Timeline {
		fmt.Println(e.Type)
	}
	// Output:
	// coordinator.started
	// contract.registered
	// dataset.uploaded
	// dataset.uploaded
	// algorithm.submitted
	// run.started
	// run.finished
	// result.fetched
}
