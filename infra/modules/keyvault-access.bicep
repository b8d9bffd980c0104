// Keyguard's access to one Key Vault, deployed into the vault's resource group. Every grant is
// scoped to this vault alone, and each is a custom role (main.bicep) with exactly the actions
// Keyguard's calls need here (tests/infra/test_arm_grants.py derives them from the code).
//
// * "Keyguard vault operator", on every vault — management plane: read the vault's
//   properties (permission model, soft delete, purge protection) and the role and deny
//   assignments at and above it, what "verify Backup access" inspects. Data plane (RBAC
//   vaults only; an access-policy vault ignores data actions): read key/secret metadata,
//   update their attributes and tags (keep pinned versions enabled, tag them), recover a
//   soft-deleted needed object, back them up for escrow. Not Crypto/Secrets Officer: those
//   can create, delete and purge, and Secrets User/Officer read secret values.
// * Data plane, access-policy vaults — one policy entry, added (not replacing the others):
//   keys get/list/update/recover/getrotationpolicy(/backup); secrets get/list/set/recover
//   (/backup). getrotationpolicy: the sweep's foresight reads each needed key's rotation policy. The
//   access-policy model has no narrower permission than "set" for updating a secret's
//   attributes and tags, and no metadata-only "get" (a deleted object's read needs "get");
//   Keyguard reads metadata only, never values.
// * Remediation (off by default) — see the two resources at the end.

@description('Resource id of the Key Vault.')
param vaultId string

@description('True when the vault uses the Azure RBAC permission model (enableRbacAuthorization).')
param rbac bool

@description('Principal (object) id of Keyguard\'s identity.')
param keyguardPrincipalId string

@description('GUID of the Keyguard vault operator custom role (a tenant-wide definition, addressed in this vault\'s subscription).')
param keyguardVaultRoleGuid string

@description('GUID of the Keyguard vault writer custom role (access-policy and purge-protection writes).')
param keyguardVaultWriterRoleGuid string

@description('GUID of the Keyguard Backup access assigner custom role (role assignment writes).')
param keyguardAssignerRoleGuid string

@description('Include keys/secrets backup in the access-policy entry (escrow on).')
param escrow bool

@description('Let Keyguard repair Backup\'s access to this vault.')
param remediation bool

@description('Let Keyguard switch purge protection on (a vaults/write).')
param enablePurgeProtection bool

@description('Object id of the Backup Management Service principal in this tenant.')
param backupPrincipalId string

@description('GUID of the custom role granting Backup its five data actions (RBAC remediation).')
param backupRoleGuid string

var keyPermissions = concat([
  'get'
  'list'
  'update'
  'recover'
  'getrotationpolicy'
], escrow ? [
  'backup'
] : [])
var secretPermissions = concat([
  'get'
  'list'
  'set'
  'recover'
], escrow ? [
  'backup'
] : [])

// RBAC remediation may only create two kinds of role assignment: the Backup custom role for the
// Backup Management Service principal, and the built-in Key Vault Crypto Service Encryption
// User (get/wrapKey/unwrapKey on keys) for a service principal — the managed identity of a
// disk encryption set whose key lives here (shared/access/des_repair.py assigns it on the key).
// PrincipalType is a request attribute of roleAssignments/write; Keyguard sends
// principalType 'ServicePrincipal' with every assignment. Deleting assignments is never allowed.
var desKeyRoleGuid = 'e147488a-f6f5-4113-8e2d-b22465e65bf6'
var assignRepairRolesOnly = '((!(ActionMatches{\'Microsoft.Authorization/roleAssignments/write\'})) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {${backupRoleGuid}} AND @Request[Microsoft.Authorization/roleAssignments:PrincipalId] ForAnyOfAnyValues:GuidEquals {${backupPrincipalId}}) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {${desKeyRoleGuid}} AND @Request[Microsoft.Authorization/roleAssignments:PrincipalType] ForAnyOfAnyValues:StringEqualsIgnoreCase {\'ServicePrincipal\'})) AND (!(ActionMatches{\'Microsoft.Authorization/roleAssignments/delete\'}))'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: last(split(vaultId, '/'))
}

resource operator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, keyguardPrincipalId, keyguardVaultRoleGuid)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyguardVaultRoleGuid)
    principalId: keyguardPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Keyguard: read the vault and its role assignments; keep needed key/secret versions enabled, tagged and recovered; escrow backups.'
  }
}

resource policy 'Microsoft.KeyVault/vaults/accessPolicies@2023-07-01' = if (!rbac) {
  parent: vault
  name: 'add'
  properties: {
    accessPolicies: [
      {
        tenantId: subscription().tenantId
        objectId: keyguardPrincipalId
        permissions: {
          keys: keyPermissions
          secrets: secretPermissions
          certificates: []
        }
      }
    ]
  }
}

// Access-policy vaults: adding Backup's policy entry is a management-plane write
// (vaults/accessPolicies/write); enabling purge protection on any vault is a vaults/write.
// The "Keyguard vault writer" role holds just those (each only with its switch on), instead
// of Key Vault Contributor (which can also delete the vault). Granted only when one of the
// switches is on, because it lets its holder rewrite the vault's policies.
resource writer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if ((remediation && !rbac) || enablePurgeProtection) {
  name: guid(vault.id, keyguardPrincipalId, keyguardVaultWriterRoleGuid)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyguardVaultWriterRoleGuid)
    principalId: keyguardPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Keyguard remediation: add Backup\'s access policy / enable purge protection.'
  }
}

// RBAC vaults: remediation assigns the Backup custom role to the Backup principal, and Key
// Vault Crypto Service Encryption User to a DES identity that lost its key access. The
// "Keyguard Backup access assigner" role (roleAssignments/write only), constrained by an ABAC
// condition to exactly those two assignments, instead of Role Based Access Control Administrator,
// User Access Administrator or Owner.
resource assigner 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (remediation && rbac) {
  name: guid(vault.id, keyguardPrincipalId, keyguardAssignerRoleGuid)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyguardAssignerRoleGuid)
    principalId: keyguardPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Keyguard remediation: may only assign the Backup custom role to Backup and Key Vault Crypto Service Encryption User to service principals (DES identities).'
    condition: assignRepairRolesOnly
    conditionVersion: '2.0'
  }
}
