//! The AWS clients, configured once per instance from the environment: the
//! function role's credentials and region, and `AWS_ENDPOINT_URL` when set
//! (moto or DynamoDB Local in tests).

use std::collections::HashMap;

use aws_config::SdkConfig;
use modelgate_dynamodb::DynamoStore;

pub(crate) struct Aws {
    config: SdkConfig,
}

impl Aws {
    /// Operations timed out after `timeout`, retries included.
    pub(crate) async fn from_env(timeout: std::time::Duration) -> Self {
        Self {
            config: DynamoStore::config_loader(timeout).load().await,
        }
    }

    pub(crate) fn dynamodb(&self, table: String) -> DynamoStore {
        DynamoStore::new(&self.config, table)
    }

    /// The secret `arn`: a JSON object of names (`MG_ADMIN_API_KEY`, the
    /// names upstream keys refer to as `env:NAME`) to values. Read once, at
    /// start; the values are never logged.
    pub(crate) async fn secrets(&self, arn: &str) -> Result<HashMap<String, String>, String> {
        let out = aws_sdk_secretsmanager::Client::new(&self.config)
            .get_secret_value()
            .secret_id(arn)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "secret {arn}: {}",
                    aws_sdk_secretsmanager::error::DisplayErrorContext(e)
                )
            })?;
        let text = out
            .secret_string()
            .ok_or_else(|| format!("secret {arn} has no SecretString"))?;
        serde_json::from_str(text)
            .map_err(|_| format!("secret {arn} must be a JSON object of strings"))
    }
}
