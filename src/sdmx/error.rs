//! SDMX error messages (SDMX-REST "Error handling and status information"): the SDMX error
//! code, its HTTP status, and the body as an SDMX-ML 2.1 `Error` message.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::xml::{escape, COMMON3_NS, MESSAGE3_NS, MESSAGE_NS};

/// The format of an SDMX-REST 2.2 error message: SDMX-ML 3.0, or SDMX-JSON when the answer
/// asked for was SDMX-JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    Xml30,
    Json,
    /// SDMX-JSON 1.0 (SDMX-REST 1.5, when a data query asked for SDMX-JSON).
    Json10,
    /// SDMX-JSON, for a structure query.
    StructureJson,
}

/// The SDMX error classes this service answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 100 No results found (404).
    NoResults,
    /// 110 Unauthorized (401): reads need a token and none valid was given.
    Unauthorized,
    /// 140 Syntax error (400): a bad path, key or parameter.
    Syntax,
    /// 130 Response too large due to client request (413).
    TooLarge,
    /// 406: no format the service offers matches `Accept` or `format`.
    NotAcceptable,
    /// 501 Not implemented.
    NotImplemented,
    /// 500 Internal server error.
    Internal,
}

impl Kind {
    fn status(self) -> StatusCode {
        match self {
            Kind::NoResults => StatusCode::NOT_FOUND,
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::Syntax => StatusCode::BAD_REQUEST,
            Kind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            Kind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The name of the error class (SDMX-REST's table of error codes).
    fn title(self) -> &'static str {
        match self {
            Kind::NoResults => "No results found",
            Kind::Unauthorized => "Unauthorized",
            Kind::Syntax => "Syntax error",
            Kind::TooLarge => "Response too large due to client request",
            Kind::NotAcceptable => "Not acceptable",
            Kind::NotImplemented => "Not implemented",
            Kind::Internal => "Internal server error",
        }
    }

    /// The SDMX error code. The standard has none for 406; it is a client error of the
    /// syntax class (the request named a format the service does not offer).
    fn code(self) -> u16 {
        match self {
            Kind::NoResults => 100,
            Kind::Unauthorized => 110,
            Kind::Syntax | Kind::NotAcceptable => 140,
            Kind::TooLarge => 130,
            Kind::NotImplemented => 501,
            Kind::Internal => 500,
        }
    }
}

/// An error answer: its class and a message that names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdmxError {
    pub kind: Kind,
    pub message: String,
}

impl SdmxError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        SdmxError {
            kind,
            message: message.into(),
        }
    }
    pub fn syntax(message: impl Into<String>) -> Self {
        Self::new(Kind::Syntax, message)
    }
    pub fn no_results(message: impl Into<String>) -> Self {
        Self::new(Kind::NoResults, message)
    }
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(Kind::NotImplemented, message)
    }

    /// The SDMX-ML 2.1 `Error` message.
    pub fn to_xml(&self) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<message:Error xmlns:message=\"{MESSAGE_NS}\" \
             xmlns:common=\"http://www.sdmx.org/resources/sdmxml/schemas/v2_1/common\">\
             <message:ErrorMessage code=\"{}\"><common:Text xml:lang=\"en\">{}</common:Text>\
             </message:ErrorMessage></message:Error>\n",
            self.kind.code(),
            escape(&self.message)
        )
    }
}

impl SdmxError {
    /// The SDMX-ML 3.0 `Error` message.
    pub fn to_xml3(&self) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<message:Error xmlns:message=\"{MESSAGE3_NS}\" \
             xmlns:common=\"{COMMON3_NS}\">\
             <message:ErrorMessage code=\"{}\"><common:Text xml:lang=\"en\">{}</common:Text>\
             </message:ErrorMessage></message:Error>\n",
            self.kind.code(),
            escape(&self.message)
        )
    }

    /// The SDMX-JSON 2.0 message with `errors` only.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "meta": {"id": "ERROR", "prepared": super::xml::header_time(chrono::Utc::now()), "sender": {"id": "TRADELEDGER"}},
            "errors": [{"code": self.kind.code(), "title": self.message}],
        })
        .to_string()
    }

    /// The SDMX-JSON 1.0 message with `errors` only: the error's code, its class as the
    /// title (which the field guide wants the same for every occurrence) and the message
    /// as the detail.
    pub fn to_json10(&self) -> String {
        serde_json::json!({
            "meta": {
                "schema": super::data::JSON10_SCHEMA,
                "id": "ERROR",
                "prepared": super::xml::header_time(chrono::Utc::now()),
                "sender": {"id": "TRADELEDGER"},
            },
            "errors": [{
                "code": self.kind.code(),
                "title": self.kind.title(),
                "titles": {"en": self.kind.title()},
                "detail": self.message,
                "details": {"en": self.message},
            }],
        })
        .to_string()
    }

    /// The answer in `style`.
    pub fn into_styled(self, style: ErrorStyle) -> Response {
        let (body, media) = match style {
            ErrorStyle::Xml30 => (self.to_xml3(), "application/xml; charset=utf-8"),
            ErrorStyle::Json => (
                self.to_json(),
                "application/vnd.sdmx.data+json; version=2.0.0; charset=utf-8",
            ),
            ErrorStyle::Json10 => (
                self.to_json10(),
                "application/vnd.sdmx.data+json; version=1.0.0; charset=utf-8",
            ),
            ErrorStyle::StructureJson => (
                self.to_json(),
                "application/vnd.sdmx.structure+json; version=2.0.0; charset=utf-8",
            ),
        };
        let mut response = self.into_response();
        *response.body_mut() = axum::body::Body::from(body);
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(media));
        response
    }
}

impl std::fmt::Display for SdmxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.kind.code())
    }
}

impl IntoResponse for SdmxError {
    fn into_response(self) -> Response {
        let mut response = (self.kind.status(), self.to_xml()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.kind == Kind::Unauthorized {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
