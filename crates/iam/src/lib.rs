//! # berth-iam — identity and access, as pure logic
//!
//! The room between the HTTP front and the registry core: it decides *who* a
//! request comes from and *whether* it may do what it asks, with AWS semantics so
//! that the AWS CLI, the SDKs, Terraform and `docker login` work unchanged.
//!
//! **What it may not touch:** no async, no I/O, no clock, no randomness, no
//! storage, no HTTP types. Everything is a plain function over plain data; the
//! caller passes the current time, looks secrets up, supplies random bytes and
//! keys, and maps errors to the wire (each error carries its AWS name and
//! status to make that mapping one line). Secret encryption at rest belongs to
//! the store crate.
//!
//! ## Modules
//!
//! - [`sigv4`] — AWS Signature Version 4, server side. [`sigv4::parse`] a
//!   [`sigv4::Request`] (header or presigned form), [`sigv4::ParsedAuth::check_time`]
//!   (±15 min), look the secret up by [`sigv4::ParsedAuth::access_key_id`], then
//!   [`sigv4::ParsedAuth::verify`] (constant-time); or all at once with
//!   [`sigv4::verify`]. [`sigv4::sign_request`] and [`sigv4::presign`] sign our
//!   own requests and URLs (e.g. `GetDownloadUrlForLayer`). Errors:
//!   [`sigv4::SigV4Error`] with `aws_code()` / `http_status()`.
//! - [`token`] — self-verifying registry tokens for `GetAuthorizationToken` and
//!   `/v2/` Basic auth: [`token::mint`], [`token::verify`] (key rotation),
//!   [`token::authorization_token`], [`token::parse_basic_auth`],
//!   [`token::verify_basic`].
//! - [`policy`] — IAM policy documents: [`policy::PolicyDocument::parse`] with a
//!   [`policy::PolicyKind`] (identity, resource, ECR repository, ECR registry),
//!   [`policy::evaluate`] a [`policy::RequestContext`] against identity and
//!   resource policies to a [`policy::Decision`] with the deciding statement;
//!   the AWS managed ECR policies ([`policy::managed_policy`]).
//! - [`arn`] — [`arn::Arn`], [`arn::AccountId`], IAM user names and paths.
//! - [`time`] — civil-date arithmetic and the AWS timestamp formats
//!   (`20261126T144500Z`, `20261126`, `2026-11-26T14:45:00Z`, HTTP dates).
//! - [`keys`] — formats of access key ids, secrets and user ids from caller-supplied random bytes.
//!
//! ## Example: authorize a pull
//!
//! ```
//! use berth_iam::arn::AccountId;
//! use berth_iam::policy::{evaluate, PolicyRef, PolicySource, Principal, RequestContext,
//!                         AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY};
//!
//! let readonly = AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY.parse().unwrap();
//! let caller = Principal::from_arn("arn:aws:iam::111122223333:user/ci").unwrap();
//! let ctx = RequestContext::new(
//!     caller,
//!     "ecr:BatchGetImage",
//!     "arn:aws:ecr:us-east-1:111122223333:repository/app",
//! );
//! let policies = [PolicyRef {
//!     name: AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY.arn,
//!     source: PolicySource::Identity,
//!     document: &readonly,
//! }];
//! assert!(evaluate(&ctx, &policies).is_allowed());
//!
//! let push = RequestContext::new(
//!     Principal::root(&AccountId::parse("444455556666").unwrap()),
//!     "ecr:PutImage",
//!     "arn:aws:ecr:us-east-1:111122223333:repository/app",
//! );
//! let e = evaluate(&push, &policies);
//! assert!(!e.is_allowed()); // another account needs a repository policy grant
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod arn;
pub mod keys;
pub mod policy;
pub mod sigv4;
pub mod time;
pub mod token;
