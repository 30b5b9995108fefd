//! Models: unique names by a name item written in the same transaction as
//! the model.

use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use modelgate_core::domain::{Model, ModelPatch, NewModel};
use modelgate_core::error::StoreError;
use modelgate_core::ports::ModelStore;

use crate::items::ModelItem;
use crate::{DynamoStore, Item, cancelled_conditions, from_item, get_s, s, to_item, unavailable};

const MODEL: &str = "model";
const MODEL_NAME: &str = "model_name";

fn name_item(name: &str, id: &str) -> Item {
    let mut item = Item::new();
    item.insert("pk".into(), s(MODEL_NAME));
    item.insert("sk".into(), s(name));
    item.insert("model_id".into(), s(id));
    item
}

impl DynamoStore {
    pub(crate) fn delete(&self, pk: &str, sk: &str) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .condition_expression("attribute_exists(pk)")
            .build()
            .map_err(unavailable)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    async fn model_row(&self, id: &str) -> Result<Option<ModelItem>, StoreError> {
        self.get(MODEL, id).await?.map(from_item).transpose()
    }

    /// Run `items` as one transaction; a failed condition is a conflict.
    pub(crate) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        what: &str,
    ) -> Result<(), StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if cancelled_conditions(&e).is_some_and(|c| !c.is_empty()) => {
                Err(StoreError::Conflict(what.to_owned()))
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

impl ModelStore for DynamoStore {
    async fn find_model(&self, name: &str) -> Result<Option<Model>, StoreError> {
        let Some(link) = self.get(MODEL_NAME, name).await? else {
            return Ok(None);
        };
        self.get_model(get_s(&link, "model_id")?).await
    }

    async fn get_model(&self, id: &str) -> Result<Option<Model>, StoreError> {
        self.model_row(id)
            .await?
            .map(ModelItem::into_model)
            .transpose()
    }

    async fn list_models(&self) -> Result<Vec<Model>, StoreError> {
        let mut models: Vec<Model> = self
            .query_all(MODEL, None)
            .await?
            .into_iter()
            .map(|i| from_item::<ModelItem>(i)?.into_model())
            .collect::<Result<_, _>>()?;
        models.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(models)
    }

    async fn insert_model(&self, new: NewModel) -> Result<Model, StoreError> {
        let mut m = new.model;
        m.updated_at = m.created_at;
        let row = ModelItem::of(&m);
        let absent = "attribute_not_exists(pk)";
        let items = vec![
            self.put(to_item(MODEL, &row.id, &row)?, absent)?,
            self.put(name_item(&row.name, &row.id), absent)?,
        ];
        match self.transact(items, &format!("Model '{}'", m.name)).await {
            Ok(()) => Ok(m),
            // The SDK retries a transaction whose attempt timed out, and a
            // retry finds the first attempt's items (DynamoDB itself would
            // honour the idempotency token; moto does not): a model under
            // this fresh id can only be this one.
            Err(StoreError::Conflict(what)) => match self.model_row(&row.id).await? {
                Some(found) if found == row => Ok(m),
                _ => Err(StoreError::Conflict(what)),
            },
            Err(e) => Err(e),
        }
    }

    async fn update_model(
        &self,
        id: &str,
        patch: ModelPatch,
        now_ms: i64,
    ) -> Result<Option<Model>, StoreError> {
        let Some(old) = self.model_row(id).await? else {
            return Ok(None);
        };
        let mut model = old.clone().into_model()?;
        patch.apply(&mut model, now_ms);
        let row = ModelItem::of(&model);
        let item = to_item(MODEL, id, &row)?;
        // The write holds only if nobody changed the model since it was read.
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("updated_at = :was")
            .expression_attribute_values(":was", crate::n(old.updated_at))
            .build()
            .map_err(unavailable)?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        if row.name != old.name {
            items.push(self.delete(MODEL_NAME, &old.name)?);
            items.push(self.put(name_item(&row.name, id), "attribute_not_exists(pk)")?);
        }
        let what = format!("Model '{}'", row.name);
        self.transact(items, &what).await?;
        Ok(Some(model))
    }

    async fn delete_model(&self, id: &str) -> Result<bool, StoreError> {
        let Some(old) = self.model_row(id).await? else {
            return Ok(false);
        };
        let items = vec![self.delete(MODEL, id)?, self.delete(MODEL_NAME, &old.name)?];
        match self.transact(items, "model changed").await {
            Ok(()) => Ok(true),
            // Deleted meanwhile by someone else.
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
