//! Every provider error body the emulator sends, one named constant each, with the place in
//! `shared/providers.md` it comes from. Bodies that echo key material are templates: the
//! placeholder (`<ECHO>`, `<LAST4>`) is replaced by the JSON-escaped echo when answering.
//!
//! Where providers.md elides part of a body with `…`, the text here follows the authtap brief that
//! filled the gap; those constants say so.

/// Moonshot, both regions, wrong/missing/other-region key. providers.md §2 "Exact 401 body"
/// (oh-my-pi #5981, cline #9588, mi-gpt #18; 84 bytes, sent with `server: nginx`, `msh-cache: miss`).
pub const MOONSHOT_INVALID_AUTHENTICATION: &str =
    r#"{"error":{"message":"Invalid Authentication","type":"invalid_authentication_error"}}"#;

/// Kimi Code, bad or missing key. providers.md §3 "Observed 401 body (Anthropic-shaped)"
/// (AutoForgeAI/autoforge #188).
pub const KIMI_INVALID_KEY: &str = r#"{"error":{"type":"authentication_error","message":"The API Key appears to be invalid or may have expired. Please verify your credentials and try again."},"type":"error"}"#;

/// Kimi Code, valid key from a client whose User-Agent is not allowlisted. providers.md §1 table row
/// "Kimi Code client gate" and §3 "Client allowlist (confirmed)".
pub const KIMI_NOT_A_CODING_AGENT: &str = r#"{"error":{"message":"Kimi For Coding is currently only available for Coding Agents such as Kimi CLI, Claude Code, Roo Code, Kilo Code, etc.","type":"access_terminated_error"}}"#;

/// Z.AI (api.z.ai), no Authorization header. Code and status from providers.md §4 "1001 → 401";
/// the English message extends the §4 code table text ("Authentication parameter not received in
/// Header") with ", unable to authenticate", translating the observed Chinese message (per brief).
pub const ZAI_MISSING_AUTH_EN: &str = r#"{"error":{"code":"1001","message":"Authentication parameter not received in Header, unable to authenticate"}}"#;

/// BigModel (open.bigmodel.cn), no Authorization header. providers.md §4 "1001 → 401"
/// (Kilo-Org/kilocode #3205).
pub const ZAI_MISSING_AUTH_CN: &str =
    r#"{"error":{"code":"1001","message":"Header中未收到Authorization参数，无法进行身份验证。"}}"#;

/// Z.AI, key not valid on this host. providers.md §1 table row "Z.AI (intl)" and §4 "Body shapes"
/// (code as a string).
pub const ZAI_AUTH_FAILED_EN: &str =
    r#"{"error":{"code":"1000","message":"Authentication Failed"}}"#;

/// BigModel, key not valid on this host. providers.md §1 table row "Zhipu BigModel (CN)"
/// (recorded 2026-10-09).
pub const ZAI_AUTH_FAILED_CN: &str = r#"{"error":{"code":"1000","message":"身份验证失败。"}}"#;

/// Z.AI/BigModel, coding-plan key on the general endpoint (HTTP 429). Status from providers.md §4
/// "Coding-plan rule" (hermes-agent #9753, openclaw #66204); message text from the §4 Anthropic
/// body (claude-code #9201), in the OpenAI-endpoint `{"error":{"code":…}}` shape.
pub const ZAI_INSUFFICIENT_BALANCE: &str = r#"{"error":{"code":"1113","message":"Insufficient balance or no resource package. Please recharge."}}"#;

/// Z.AI/BigModel Anthropic endpoint, bad or missing key. Shape from providers.md §4 "Anthropic
/// endpoint puts the code in `type`" (claude-code #9201); providers.md elides the request id after
/// `20251009174412`, the suffix `abcdef` is the brief's.
pub const ZAI_ANTHROPIC_AUTH_FAILED: &str = r#"{"type":"error","error":{"type":"1000","message":"Authentication Failed"},"request_id":"20251009174412abcdef"}"#;

/// MiniMax native shape for a bad key (HTTP 200 on `/v1/text/chatcompletion_v2`, HTTP 401 on
/// `/v1/chat/completions` per brief). providers.md §5 "2049 invalid api key" (MiniMax-M2.5 #18,
/// MiniMax-01 #37).
pub const MINIMAX_INVALID_API_KEY: &str =
    r#"{"base_resp":{"status_code":2049,"status_msg":"invalid api key"}}"#;

/// MiniMax Anthropic endpoint, bad or missing key. providers.md §5 "401 `authentication_error:
/// invalid api key`" (openclaw #37142), in the Anthropic error envelope.
pub const MINIMAX_ANTHROPIC_INVALID_KEY: &str =
    r#"{"type":"error","error":{"type":"authentication_error","message":"invalid api key"}}"#;

/// MiniMax CN Anthropic endpoint, valid key sent as `x-api-key` (HTTP 500). providers.md §5
/// "Header quirk (CN Anthropic path)" (MiniMax-AI/cli #59).
pub const MINIMAX_CN_X_API_KEY_SYSTEM_ERROR: &str =
    r#"{"type":"error","error":{"type":"api_error","message":"system error (1033)"}}"#;

/// DashScope, no key. providers.md §6 "Missing key" (live-recorded 2026-08-17) elides the middle of
/// the message with `…`; the full text (note the trailing space before the closing quote) is the
/// brief's.
pub const DASHSCOPE_MISSING_KEY: &str = r#"{"error":{"message":"You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). ","type":"invalid_request_error","code":null}}"#;

/// DashScope, invalid key (also a key from another region or billing plan). providers.md §6
/// "Invalid key" (live-recorded 2026-08-17).
pub const DASHSCOPE_INVALID_KEY: &str = r#"{"error":{"message":"Incorrect API key provided. For details, see: https://help.aliyun.com/zh/model-studio/error-code#apikey-error","type":"invalid_request_error","code":"invalid_api_key"}}"#;

/// DeepSeek, invalid key; `<LAST4>` is the last four characters of the key sent. providers.md §7
/// "Invalid key" (continuedev #11820; claude-code-launcher #3) and §11.
pub const DEEPSEEK_INVALID_KEY_TEMPLATE: &str = r#"{"error":{"message":"Authentication Fails, Your api key: ****<LAST4> is invalid","type":"authentication_error","param":null,"code":"invalid_request_error"}}"#;

/// OpenAI, no key. providers.md §8 "Missing key" elides the end of the message with `…`; the full
/// text is the brief's.
pub const OPENAI_MISSING_KEY: &str = r#"{"error":{"message":"You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (i.e. sk-...:YOUR_KEY) when using HTTP Basic Auth.","type":"invalid_request_error","param":null,"code":null}}"#;

/// OpenAI, invalid key; `<ECHO>` is the masked (or, with `echo_full_keys`, whole) key sent.
/// providers.md §1 table row "OpenAI" and §11 (mask: first 3 + `*` + last 4; short strings whole).
pub const OPENAI_INVALID_KEY_TEMPLATE: &str = r#"{"error":{"message":"Incorrect API key provided: <ECHO>. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;

/// Anthropic, invalid (or missing: UNVERIFIED in providers.md §9) key. providers.md §1 table row
/// "Anthropic"; the elided `req_…` id is the brief's fixed test id.
pub const ANTHROPIC_INVALID_KEY: &str = r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_011CTestRequestId0001"}"#;

/// OpenRouter, no key. providers.md §1 table row "OpenRouter" and §10.
pub const OPENROUTER_NO_CREDENTIALS: &str =
    r#"{"error":{"message":"No auth credentials found","code":401}}"#;

/// OpenRouter, invalid key. providers.md §1 table row "OpenRouter" and §10.
pub const OPENROUTER_USER_NOT_FOUND: &str = r#"{"error":{"message":"User not found.","code":401}}"#;

/// Groq, invalid or missing key. providers.md §10 "Groq" (emeeran/TQ_GenAI_Chat GROQ_API_FIX.md).
pub const GROQ_INVALID_KEY: &str = r#"{"error":{"message":"Invalid API Key","type":"invalid_request_error","code":"invalid_api_key"}}"#;

/// xAI, invalid key (HTTP 400, older echoing format); `<ECHO>` is first 2 + `***` + last 2 of the key
/// sent. providers.md §1 table row "xAI" and §11.
pub const XAI_INVALID_KEY_TEMPLATE: &str = r#"{"code":"Client specified an invalid argument","error":"Incorrect API key provided: <ECHO>. You can obtain an API key from https://console.x.ai."}"#;

/// Gemini, invalid or missing key (HTTP 400). providers.md §1 table row "Google AI Studio (Gemini)"
/// elides the end of the ErrorInfo with `…`; `domain` and `metadata` are the brief's.
pub const GEMINI_API_KEY_INVALID: &str = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#;

/// Emulator's own answer for a path it does not emulate on a known host (HTTP 404).
pub const NO_SUCH_PATH: &str =
    r#"{"error":{"message":"emulator: no such path","type":"not_found"}}"#;

/// Emulator's own answer for a host it does not serve (HTTP 421); `<HOST>` is the host asked for.
pub const MISDIRECTED_TEMPLATE: &str = r#"{"error":{"message":"emulator: this server does not serve host <HOST>","type":"misdirected_request"}}"#;

/// Mistral, invalid key (providers.md section 10: nextcloud/integration_openai #332).
pub const MISTRAL_UNAUTHORIZED: &str = r#"{"detail":"Unauthorized"}"#;
