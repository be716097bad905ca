//! ApiVersions: advertises exactly the table of supported APIs in `sluice-protocol`.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;
use sluice_protocol::versions::SUPPORTED;

pub fn supported() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|api| {
            ApiVersion::default()
                .with_api_key(api.key as i16)
                .with_min_version(api.min)
                .with_max_version(api.max)
        })
        .collect()
}

pub fn handle() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(supported())
}
