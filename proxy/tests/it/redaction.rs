//! Random canary keys, sent every way a client can send them and echoed back by the providers that
//! echo keys, appear nowhere in authtap's capture, stdout or stderr, even at RUST_LOG=trace.

use authtap_emulator::Emulator;

use crate::harness::{
    Authtap, CHAT, CHAT_STREAM, Start, assert_no_leak, client, random_alnum, random_hex, send,
};

struct Canary {
    key: String,
    prefix: &'static str,
}

#[tokio::test(flavor = "multi_thread")]
async fn canary_keys_never_leave_memory() {
    let valid_moonshot = Canary {
        key: format!("sk-{}", random_alnum(48)),
        prefix: "sk-",
    };
    let emulator = Emulator::builder()
        .key("api.moonshot.ai", &valid_moonshot.key)
        .echo_full_keys(true)
        .start()
        .await
        .expect("emulator");
    let canaries = vec![
        Canary {
            key: format!("sk-proj-{}", random_alnum(100)),
            prefix: "sk-proj-",
        },
        Canary {
            key: format!("sk-{}", random_hex(32)),
            prefix: "sk-",
        },
        Canary {
            key: format!("xai-{}", random_alnum(80)),
            prefix: "xai-",
        },
        Canary {
            key: format!("sk-kimi-{}", random_alnum(64)),
            prefix: "sk-kimi-",
        },
        Canary {
            key: format!("{}.{}", random_hex(32), random_alnum(16)),
            prefix: "",
        },
        Canary {
            key: format!("AIza{}", random_alnum(35)),
            prefix: "AIza",
        },
        Canary {
            key: random_alnum(9),
            prefix: "",
        },
    ];

    for json in [true, false] {
        let authtap = Authtap::start_with(Start {
            emulator: Some(&emulator),
            rust_log: Some("trace"),
            json,
            ..Start::default()
        });
        let client = client();
        let mut sent = 0;
        for canary in &canaries {
            let k = &canary.key;
            let bearer = format!("Bearer {k}");
            let quoted = format!("Bearer \"{k}\"");
            let tabbed = format!("Bearer {k}\t");
            let doubled = format!("Bearer Bearer {k}");
            // OpenAI echoes the whole key (echo_full_keys), DeepSeek its last 4, xAI 2+2.
            for (route, path, headers) in [
                (
                    "openai",
                    "/v1/chat/completions",
                    vec![("authorization", bearer.as_str())],
                ),
                (
                    "openai",
                    "/v1/chat/completions",
                    vec![("authorization", quoted.as_str())],
                ),
                (
                    "deepseek",
                    "/v1/chat/completions",
                    vec![("authorization", tabbed.as_str())],
                ),
                (
                    "xai",
                    "/v1/chat/completions",
                    vec![("authorization", doubled.as_str())],
                ),
                (
                    "kimi-coding",
                    "/v1/messages",
                    vec![("x-api-key", k.as_str())],
                ),
                (
                    "minimax",
                    "/anthropic/v1/messages",
                    vec![
                        ("x-api-key", k.as_str()),
                        ("authorization", bearer.as_str()),
                    ],
                ),
                (
                    "moonshot",
                    "/v1/chat/completions",
                    vec![("authorization", k.as_str())],
                ),
            ] {
                send(
                    &client,
                    "POST",
                    &authtap.url(&format!("/{route}{path}")),
                    &headers,
                    CHAT,
                )
                .await;
                sent += 1;
            }
            let query = format!("/gemini/v1beta/models/g:generateContent?alt=sse&key={k}");
            send(&client, "POST", &authtap.url(&query), &[], CHAT).await;
            let unknown = format!("/nowhere/v1?api_key={k}");
            send(
                &client,
                "GET",
                &authtap.url(&unknown),
                &[("authorization", &bearer)],
                "",
            )
            .await;
            sent += 2;
        }
        // A key that works, streamed, so success paths are covered too.
        let good = format!("Bearer {}", valid_moonshot.key);
        let ok = send(
            &client,
            "POST",
            &authtap.url("/moonshot/v1/chat/completions"),
            &[("authorization", &good)],
            CHAT_STREAM,
        )
        .await;
        assert_eq!(ok.status, 200);
        sent += 1;

        let mut authtap = authtap;
        let records = authtap.records(sent);
        assert_eq!(records.len(), sent);
        // What the consoles read: the admin API's recent exchanges.
        let admin = send(
            &client,
            "GET",
            &authtap.url("/_authtap/api/exchanges?limit=1000"),
            &[],
            "",
        )
        .await;
        let admin = String::from_utf8_lossy(&admin.body).to_string();
        assert!(
            admin.contains("\"fingerprint\""),
            "the admin API answered records"
        );
        assert!(authtap.stop().success());
        // What a user pastes into a support thread: replay's timeline, summary and JSON.
        let replay = |args: &[&str]| {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_authtap"))
                .arg("replay")
                .args(args)
                .arg(&authtap.capture)
                .output()
                .expect("replay");
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        };
        let replayed = format!("{}{}", replay(&[]), replay(&["--json"]));
        let capture = std::fs::read_to_string(&authtap.capture).expect("capture");
        let (stdout, stderr) = (authtap.stdout(), authtap.stderr());
        assert!(stderr.contains("TRACE"), "trace logging was on");
        // The echoes really happened: the emulator sent the full key back in OpenAI's error.
        let echoed = emulator
            .sent_bodies()
            .iter()
            .any(|b| String::from_utf8_lossy(b).contains(&canaries[0].key));
        assert!(
            echoed,
            "the emulator echoed the canary, so scrubbing was exercised"
        );
        for canary in canaries.iter().chain([&valid_moonshot]) {
            assert_no_leak("the capture", &capture, &canary.key, canary.prefix);
            assert_no_leak("stdout", &stdout, &canary.key, canary.prefix);
            assert_no_leak("stderr", &stderr, &canary.key, canary.prefix);
            assert_no_leak("the admin API", &admin, &canary.key, canary.prefix);
            assert_no_leak("replay output", &replayed, &canary.key, canary.prefix);
        }
        // The fingerprint lets a user match keys without seeing them.
        assert!(capture.contains("\"fingerprint\":\"hmac:"));
    }
}
