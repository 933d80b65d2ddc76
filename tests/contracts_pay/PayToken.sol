// SPDX-License-Identifier: MIT
// A minimal ERC-20 for the payment tests: anyone may mint (test only); `frozen`
// makes every transfer revert, to produce a mined payment with receipt status 0.
pragma solidity ^0.8.0;

contract PayToken {
    string public constant name = "Pay Token";
    string public constant symbol = "PAY";
    uint8 public constant decimals = 6;
    uint256 public totalSupply;
    bool public frozen;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    function mint(address to, uint256 value) external {
        totalSupply += value;
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }

    function freeze(bool on) external {
        frozen = on;
    }

    function transfer(address to, uint256 value) external returns (bool) {
        require(!frozen, "frozen");
        require(balanceOf[msg.sender] >= value, "balance");
        balanceOf[msg.sender] -= value;
        balanceOf[to] += value;
        emit Transfer(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        require(!frozen, "frozen");
        require(balanceOf[from] >= value && allowance[from][msg.sender] >= value, "allowance");
        allowance[from][msg.sender] -= value;
        balanceOf[from] -= value;
        balanceOf[to] += value;
        emit Transfer(from, to, value);
        return true;
    }
}
