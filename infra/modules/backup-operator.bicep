// Keyguard's backup grant on one Recovery Services vault, deployed into the vault's resource
// group: the custom "Keyguard backup operator" role (main.bicep, keyguardBackupActions) —
// read protected items, recovery points, policies and jobs, trigger on-demand backups and
// follow their operations. Not the built-in Backup Operator, which can also configure
// protection and restore; nothing here can change policies, stop protection or delete data.

@description('Resource id of the Recovery Services vault.')
param recoveryVaultId string

@description('Principal (object) id of Keyguard\'s identity.')
param keyguardPrincipalId string

@description('GUID of the Keyguard backup operator custom role.')
param roleGuid string

resource recoveryVault 'Microsoft.RecoveryServices/vaults@2023-04-01' existing = {
  name: last(split(recoveryVaultId, '/'))
}

resource operator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(recoveryVault.id, keyguardPrincipalId, roleGuid)
  scope: recoveryVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleGuid)
    principalId: keyguardPrincipalId
    principalType: 'ServicePrincipal'
    description: 'Keyguard: trigger on-demand backups and follow their jobs.'
  }
}
